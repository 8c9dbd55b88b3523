package mongo

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/fabcommons/fabcommons/storage"
	"github.com/fabcommons/fabcommons/storage/externaltest"
)

// TestEveryCallSaysUnavailable calls every exported method of every store in this
// package while the database server is stopped: each must fail with an error of kind
// storage.ErrUnavailable (the hub answers 503), or succeed without the server; no
// driver error may come out raw (a 500) and nothing may panic. Reflection finds the
// methods, so a method added later is held to it too. Then the server starts again and
// the same DB serves without being reopened.
func TestEveryCallSaysUnavailable(t *testing.T) {
	t.Parallel()
	server, uri := externaltest.StartFerretDB(t, "away")
	ctx := context.Background()
	db, err := Open(ctx, uri+"&serverSelectionTimeoutMS=500")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()

	server.Stop()
	stores := map[string]any{"DB": db, "Accounts": db.Accounts(), "Catalog": db.Catalog(), "Fabrication": db.Fabrication(), "Leases": db.Leases(), "Quotas": db.Quotas(), "Webhooks": db.Webhooks()}
	skip := map[string]bool{"DB.Close": true, "DB.Name": true}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var calls, leaks []string
	for name, store := range stores {
		v := reflect.ValueOf(store)
		for i := 0; i < v.NumMethod(); i++ {
			m := v.Type().Method(i)
			call := name + "." + m.Name
			errAt := v.Method(i).Type().NumOut() - 1
			if skip[call] || errAt < 0 || v.Method(i).Type().Out(errAt) != reflect.TypeFor[error]() {
				continue
			}
			calls = append(calls, call)
			wg.Add(1)
			go func() {
				defer wg.Done()
				err := callWithZeroArgs(v.Method(i))
				if err != nil && !errors.Is(err, storage.ErrUnavailable) {
					mu.Lock()
					leaks = append(leaks, fmt.Sprintf("%s: got %v (%T), want an error of kind storage.ErrUnavailable", call, err, err))
					mu.Unlock()
				}
			}()
		}
	}
	wg.Wait()
	if len(calls) < 50 {
		t.Fatalf("called %d methods; the stores have more (is reflection finding them?)", len(calls))
	}
	for _, l := range leaks {
		t.Error(l)
	}
	t.Logf("%d calls with the server away", len(calls))

	server.Start()
	deadline := time.Now().Add(20 * time.Second)
	for {
		_, err := db.Accounts().UserByHandle(ctx, "nobody")
		if errors.Is(err, storage.ErrNotFound) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("20 s after the server came back: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// callWithZeroArgs calls m with a context that ends in 30 s, "x" for strings (an
// empty one is refused before any call, by some) and zero values for every other
// argument, and returns its error result; a panic is returned as an error.
func callWithZeroArgs(m reflect.Value) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("panic: %v", r)
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ctxType := reflect.TypeFor[context.Context]()
	args := make([]reflect.Value, m.Type().NumIn())
	for i := range args {
		if in := m.Type().In(i); in == ctxType {
			args[i] = reflect.ValueOf(ctx)
		} else if in.Kind() == reflect.String {
			args[i] = reflect.ValueOf("x").Convert(in)
		} else {
			args[i] = reflect.Zero(in)
		}
	}
	if m.Type().IsVariadic() {
		out := m.CallSlice(args)
		err, _ = out[len(out)-1].Interface().(error)
		return err
	}
	out := m.Call(args)
	err, _ = out[len(out)-1].Interface().(error)
	return err
}
