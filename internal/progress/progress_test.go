package progress

import "testing"

func TestRenderBar(t *testing.T) {
	t.Parallel()
	cases := []struct {
		done, total int64
		want        string
	}{
		{0, 1e6, "download [----------]   0%  0.0 MB / 1.0 MB"},
		{450e3, 1e6, "download [####------]  45%  0.5 MB / 1.0 MB"},
		{1e6, 1e6, "download [##########] 100%  1.0 MB / 1.0 MB"},
		{2e6, 1e6, "download [##########] 100%  2.0 MB / 1.0 MB"},
		{3e6, -1, "download 3.0 MB"},
	}
	for _, c := range cases {
		if got := render("download", c.done, c.total, 10); got != c.want {
			t.Errorf("render(%d, %d): got %q, want %q", c.done, c.total, got, c.want)
		}
	}
}
