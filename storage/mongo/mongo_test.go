package mongo

import "testing"

func TestDatabaseName(t *testing.T) {
	t.Parallel()
	for uri, want := range map[string]string{
		"mongodb://localhost:27017":                         "fabcommons",
		"mongodb://localhost:27017/":                        "fabcommons",
		"mongodb://u:p@mongo:27017/fabhub?authSource=admin": "fabhub",
		"mongodb+srv://cluster.example.org/commons":         "commons",
	} {
		if got := DatabaseName(uri); got != want {
			t.Errorf("DatabaseName(%q): got %q, want %q", uri, got, want)
		}
	}
}
