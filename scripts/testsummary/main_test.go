package main

import (
	"strings"
	"testing"
)

func TestSummarize(t *testing.T) {
	t.Parallel()
	in := strings.Join([]string{
		`{"Action":"run","Package":"p","Test":"TestBlobConformance/local"}`,
		`{"Action":"output","Package":"p","Test":"TestBlobConformance/local","Output":"ok\n"}`,
		`{"Action":"pass","Package":"p","Test":"TestBlobConformance/local"}`,
		`{"Action":"output","Package":"p","Test":"TestBlobConformance/minio","Output":"    x.go:1: FAB_TEST_MINIO_ENDPOINT is not set\n"}`,
		`{"Action":"skip","Package":"p","Test":"TestBlobConformance/minio"}`,
		`{"Action":"output","Package":"p","Test":"TestBad","Output":"    y.go:9: got 1, want 2\n"}`,
		`{"Action":"fail","Package":"p","Test":"TestBad"}`,
		`{"Action":"fail","Package":"p","Elapsed":1.5}`,
	}, "\n")
	var out strings.Builder
	failed, err := summarize(strings.NewReader(in), &out)
	if err != nil || !failed {
		t.Fatalf("got failed %v, %v; want true", failed, err)
	}
	for _, want := range []string{
		"PASS TestBlobConformance/local", "SKIP TestBlobConformance/minio", "FAB_TEST_MINIO_ENDPOINT is not set",
		"== FAIL p TestBad", "got 1, want 2", "FAIL p (1.5s)", "tests: 1 passed, 1 failed, 1 skipped",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("summary lacks %q:\n%s", want, out.String())
		}
	}
	out.Reset()
	if failed, _ := summarize(strings.NewReader(`{"Action":"pass","Package":"p"}`), &out); failed {
		t.Errorf("all passing: got failed")
	}
	if failed, _ := summarize(strings.NewReader("# p\n./x.go:1: syntax error\n"), &out); !failed {
		t.Errorf("build error: got not failed")
	}
}
