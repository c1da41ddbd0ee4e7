package store

import (
	"errors"
	"path/filepath"
	"testing"
)

// TestRecords: records survive a reopen, a failing update writes nothing, Each walks one
// prefix in key order, and a read-only view refuses writes.
func TestRecords(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	s := open(t, path)
	type rec struct{ N int }
	if err := s.ViewRecords("pay", func(r RecordTx) error {
		return r.Each("", func(string, []byte) error { return errors.New("not empty") })
	}); err != nil {
		t.Fatalf("view of a set never written: %v", err)
	}
	err := s.UpdateRecords("pay", func(r RecordTx) error {
		for _, k := range []string{"job/2", "job/1", "epoch/1"} {
			if err := r.Put(k, rec{len(k)}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	boom := errors.New("boom")
	if err := s.UpdateRecords("pay", func(r RecordTx) error {
		if err := r.Put("job/3", rec{3}); err != nil {
			return err
		}
		return boom
	}); !errors.Is(err, boom) {
		t.Fatalf("failing update: %v", err)
	}
	s.Close()
	s = open(t, path)
	var keys []string
	err = s.ViewRecords("pay", func(r RecordTx) error {
		var v rec
		if ok, err := r.Get("job/1", &v); !ok || err != nil || v.N != 5 {
			t.Errorf("get job/1: %v %v %+v", ok, err, v)
		}
		if ok, _ := r.Get("job/3", &v); ok {
			t.Error("a failed update's write landed")
		}
		if err := r.Put("x", rec{}); err == nil {
			t.Error("a read-only view wrote")
		}
		return r.Each("job/", func(k string, _ []byte) error { keys = append(keys, k); return nil })
	})
	if err != nil || len(keys) != 2 || keys[0] != "job/1" || keys[1] != "job/2" {
		t.Fatalf("each job/: %v %v", keys, err)
	}
	// Another set does not see these.
	if err := s.ViewRecords("other", func(r RecordTx) error {
		var v rec
		if ok, _ := r.Get("job/1", &v); ok {
			return errors.New("sets share records")
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}
