package store

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

func open(t *testing.T, path string) *Store {
	t.Helper()
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestLifecycle(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	s := open(t, path)
	if err := s.Create(Job{ID: "7", State: "discovered"}, "JobPosted in block 12"); err != nil {
		t.Fatal(err)
	}
	if err := s.Create(Job{ID: "7", State: "discovered"}, ""); !errors.Is(err, ErrExists) {
		t.Errorf("second create: %v", err)
	}
	j, err := s.Advance("7", "discovered", "accepted", "tx 0xabc", func(j *Job) error {
		j.Data = []byte(`{"tx":"0xabc"}`)
		return nil
	})
	if err != nil || j.State != "accepted" || string(j.Data) != `{"tx":"0xabc"}` {
		t.Fatalf("advance: %+v %v", j, err)
	}
	if _, err := s.Advance("7", "discovered", "accepted", "", nil); !errors.Is(err, ErrConflict) {
		t.Errorf("repeated advance: %v", err)
	}
	if _, err := s.Advance("nope", "a", "b", "", nil); !errors.Is(err, ErrNotFound) {
		t.Errorf("advance of a missing job: %v", err)
	}
	// A failing update changes nothing.
	if _, err := s.Advance("7", "accepted", "running", "", func(*Job) error { return errors.New("boom") }); err == nil {
		t.Error("failing update succeeded")
	}
	if j, _ := s.Get("7"); j.State != "accepted" {
		t.Errorf("state after a failed update: %s", j.State)
	}
	h, err := s.History("7")
	if err != nil || len(h) != 2 || h[0].To != "discovered" || h[1].From != "discovered" || h[1].To != "accepted" || h[1].Note != "tx 0xabc" {
		t.Errorf("history: %+v %v", h, err)
	}
	s.Close()
	s2 := open(t, path)
	if j, err := s2.Get("7"); err != nil || j.State != "accepted" {
		t.Errorf("after reopen: %+v %v", j, err)
	}
	jobs, _ := s2.List(func(j Job) bool { return j.State == "accepted" })
	if len(jobs) != 1 {
		t.Errorf("list: %+v", jobs)
	}
}

// TestAdvanceIsExclusive: of many concurrent attempts at one transition, one wins.
func TestAdvanceIsExclusive(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "state.db"))
	s.Create(Job{ID: "1", State: "uploaded"}, "")
	var wins atomic.Int32
	var wg sync.WaitGroup
	for i := 0; i < 16; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := s.Advance("1", "uploaded", "submitted", "", nil); err == nil {
				wins.Add(1)
			}
		}()
	}
	wg.Wait()
	if wins.Load() != 1 {
		t.Errorf("%d goroutines advanced the job, want 1", wins.Load())
	}
}

func TestSeenAndCursors(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "state.db"))
	if already, err := s.MarkSeen("0xblock:3"); already || err != nil {
		t.Errorf("first mark: %v %v", already, err)
	}
	if already, _ := s.MarkSeen("0xblock:3"); !already {
		t.Error("second mark not reported as seen")
	}
	if v, _ := s.Cursor("chain"); v != 0 {
		t.Errorf("unset cursor = %d", v)
	}
	s.SetCursor("chain", 12345)
	if v, _ := s.Cursor("chain"); v != 12345 {
		t.Errorf("cursor = %d", v)
	}
}

func TestLockedByAnotherProcess(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	open(t, path)
	out, err := child("open", path).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "locked by another process") {
		t.Errorf("child: %v\n%s", err, out)
	}
}

// TestKilledMidWrite: a process killed at any point leaves a file that opens, with every
// committed transition and nothing half-written.
func TestKilledMidWrite(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	cmd := child("write", path)
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64)
	stdout.Read(buf) // the child says when it has begun writing
	cmd.Process.Kill()
	cmd.Wait()
	s := open(t, path)
	jobs, err := s.List(nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, j := range jobs {
		h, err := s.History(j.ID)
		if err != nil {
			t.Fatal(err)
		}
		if h[len(h)-1].To != j.State {
			t.Errorf("job %s is %s but its history ends at %s", j.ID, j.State, h[len(h)-1].To)
		}
	}
	if len(jobs) == 0 {
		t.Error("no committed job survived")
	}
}

// child runs this test binary as a helper process (see TestMain).
func child(mode, path string) *exec.Cmd {
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), "STORE_CHILD_MODE="+mode, "STORE_CHILD_PATH="+path)
	return cmd
}

// TestMain lets the tests above run this binary as a second process that opens the
// store ("open") or writes to it until killed ("write").
func TestMain(m *testing.M) {
	path := os.Getenv("STORE_CHILD_PATH")
	switch os.Getenv("STORE_CHILD_MODE") {
	case "open":
		_, err := Open(path)
		fmt.Println(err)
		os.Exit(0)
	case "write":
		s, err := Open(path)
		if err != nil {
			fmt.Println(err)
			os.Exit(1)
		}
		for i := 0; i < 100000; i++ {
			id := fmt.Sprint(i)
			s.Create(Job{ID: id, State: "a"}, "")
			s.Advance(id, "a", "b", "", nil)
			if i == 5 {
				fmt.Println("writing")
			}
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// TestLedgerBooksOnce: an event handled twice (a replay after a crash) is booked once, and
// the ledger survives reopening the file.
func TestLedgerBooksOnce(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	for i, key := range []string{"0xa:1", "0xa:2", "0xa:1"} {
		booked, err := s.Book(key, Entry{Kind: "reward", Wei: fmt.Sprint(100 * (i + 1)), JobID: "7"})
		if err != nil || booked != (i < 2) {
			t.Errorf("book %s: booked %v, %v", key, booked, err)
		}
	}
	s.Close()
	s = open(t, path)
	entries, err := s.Ledger()
	if err != nil || len(entries) != 2 || entries[0].Wei != "100" || entries[1].Wei != "200" || entries[0].At.IsZero() {
		t.Errorf("ledger %+v, %v", entries, err)
	}
}
