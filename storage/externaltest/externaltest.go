// Package externaltest finds the real servers scripts/test.sh starts for the external
// backend suites. Without them a suite skips, except under CI=true, where it fails.
package externaltest

import (
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"testing"
)

// Env returns the value of name, or skips (fails under CI=true) when it is unset.
func Env(t testing.TB, name string) string {
	t.Helper()
	v := os.Getenv(name)
	if v != "" {
		return v
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s is not set: CI must run the external suites (run them through scripts/test.sh)", name)
	}
	t.Skipf("%s is not set: run scripts/test.sh to start the real server for this suite", name)
	return ""
}

// MinIO is where the test MinIO server listens and its credentials.
type MinIO struct {
	Endpoint, AccessKey, SecretKey string
}

// NeedMinIO reads FAB_TEST_MINIO_ENDPOINT, _ACCESS_KEY and _SECRET_KEY.
func NeedMinIO(t testing.TB) MinIO {
	t.Helper()
	return MinIO{
		Endpoint:  Env(t, "FAB_TEST_MINIO_ENDPOINT"),
		AccessKey: Env(t, "FAB_TEST_MINIO_ACCESS_KEY"),
		SecretKey: Env(t, "FAB_TEST_MINIO_SECRET_KEY"),
	}
}

// NeedMongoDB reads FAB_TEST_MONGODB_URI.
func NeedMongoDB(t testing.TB) string {
	t.Helper()
	return Env(t, "FAB_TEST_MONGODB_URI")
}

// MongoDBURIFor returns the test server's URI with its database path set to name,
// keeping the URI's options (scripts/test.sh sets maxPoolSize).
func MongoDBURIFor(t testing.TB, name string) string {
	t.Helper()
	u, err := url.Parse(NeedMongoDB(t))
	if err != nil {
		t.Fatalf("FAB_TEST_MONGODB_URI: %v", err)
	}
	u.Path = "/" + name
	return u.String()
}

// UniqueName returns prefix plus random hex, for a bucket or database of one test's own.
func UniqueName(prefix string) string {
	b := make([]byte, 6)
	rand.Read(b)
	return prefix + hex.EncodeToString(b)
}
