package externaltest

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// Server is a test server process of a test's own (MinIO or FerretDB, built by
// scripts/test.sh) that the test can stop and start again on the same port and data
// directory, as an operator's restart or a crash would.
type Server struct {
	t     testing.TB
	name  string
	Addr  string // 127.0.0.1:port
	cmd   func() *exec.Cmd
	ready func() bool // whether the server answers; a listening port is not always enough
	log   *os.File

	mu      sync.Mutex
	running *exec.Cmd
	exited  chan struct{} // closed when the running process has been reaped
}

// StartMinIO starts a MinIO server of the test's own from FAB_TEST_MINIO_BIN, with its
// data in a temporary directory, and returns it with its credentials.
func StartMinIO(t testing.TB) (*Server, MinIO) {
	t.Helper()
	bin := Env(t, "FAB_TEST_MINIO_BIN")
	dir := t.TempDir()
	addr, console := freeAddr(t), freeAddr(t)
	creds := MinIO{Endpoint: addr, AccessKey: "fabfault", SecretKey: UniqueName("secret-")}
	s := newServer(t, "minio", addr, func() *exec.Cmd {
		cmd := exec.Command(bin, "server", "--quiet", "--address", addr, "--console-address", console, filepath.Join(dir, "data"))
		cmd.Env = append(os.Environ(), "MINIO_ROOT_USER="+creds.AccessKey, "MINIO_ROOT_PASSWORD="+creds.SecretKey, "MINIO_BROWSER=off")
		return cmd
	})
	// MinIO listens, and says it is ready on /minio/health/ready, before it serves
	// requests (it answers 503 "Server not initialized yet" meanwhile): ask it as a
	// client would.
	client, err := minio.New(addr, &minio.Options{Creds: credentials.NewStaticV4(creds.AccessKey, creds.SecretKey, ""), MaxRetries: 1})
	if err != nil {
		t.Fatal(err)
	}
	s.ready = func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_, err := client.ListBuckets(ctx)
		return err == nil
	}
	s.Start()
	return s, creds
}

// StartFerretDB starts a FerretDB server of the test's own from FAB_TEST_FERRETDB_BIN,
// with its SQLite files in a temporary directory, and returns it with a URI for a
// database named name (options as scripts/test.sh sets them).
func StartFerretDB(t testing.TB, name string) (*Server, string) {
	t.Helper()
	bin := Env(t, "FAB_TEST_FERRETDB_BIN")
	dir := t.TempDir()
	addr := freeAddr(t)
	s := newServer(t, "ferretdb", addr, func() *exec.Cmd {
		return exec.Command(bin, "-listen", addr, "-dir", dir)
	})
	s.Start()
	return s, fmt.Sprintf("mongodb://%s/%s?maxPoolSize=4", addr, name)
}

func newServer(t testing.TB, name, addr string, cmd func() *exec.Cmd) *Server {
	log, err := os.Create(filepath.Join(t.TempDir(), name+".log"))
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{t: t, name: name, Addr: addr, cmd: cmd, log: log, ready: func() bool {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
		}
		return err == nil
	}}
	t.Cleanup(func() {
		s.Stop()
		log.Close()
		if t.Failed() {
			if b, err := os.ReadFile(log.Name()); err == nil && len(b) > 0 {
				t.Logf("%s's log:\n%s", name, b)
			}
		}
	})
	return s
}

// Start starts the server and waits until it serves (at most 30 s).
func (s *Server) Start() {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.running != nil {
		s.t.Fatalf("%s is already running", s.name)
	}
	cmd := s.cmd()
	cmd.Stdout, cmd.Stderr = s.log, s.log
	if err := cmd.Start(); err != nil {
		s.t.Fatalf("start %s: %v", s.name, err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if s.ready() {
			break
		}
		select {
		case <-exited:
			s.t.Fatalf("%s exited at start: %v", s.name, cmd.ProcessState)
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			s.t.Fatalf("%s did not listen on %s within 30 s", s.name, s.Addr)
		}
	}
	s.running, s.exited = cmd, exited
}

// Stop kills the server at once, as a crash or a pulled plug would (SIGKILL: no
// graceful end for requests in flight), and waits until its port is free. Stopping a
// stopped server does nothing.
func (s *Server) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.running == nil {
		return
	}
	s.running.Process.Signal(syscall.SIGKILL)
	<-s.exited // a killed process's sockets are closed by the time it is reaped
	s.running = nil
}

func freeAddr(t testing.TB) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}
