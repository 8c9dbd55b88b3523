package s3blob

import (
	"strings"
	"testing"
)

func TestParseURL(t *testing.T) {
	t.Parallel()
	c, err := ParseURL("s3://minio:s3cret@127.0.0.1:9000/fab-blobs?tls=false&region=eu-west-1")
	want := Config{Endpoint: "127.0.0.1:9000", AccessKey: "minio", SecretKey: "s3cret", Bucket: "fab-blobs", Region: "eu-west-1", TLS: false}
	if err != nil || c != want {
		t.Fatalf("got %+v, %v; want %+v", c, err, want)
	}
	c, err = ParseURL("s3://s3.example.org/bucket")
	if err != nil || !c.TLS || c.AccessKey != "" {
		t.Fatalf("defaults: got %+v, %v; want TLS on and keys from the environment", c, err)
	}
	for _, bad := range []string{"http://h/b", "s3://h", "s3:///b", "s3://h/a/b", "s3://h/b?tls=maybe", "::"} {
		if _, err := ParseURL(bad); err == nil || strings.Contains(err.Error(), "s3cret") {
			t.Errorf("ParseURL(%q): got %v, want an error", bad, err)
		}
	}
}
