// Package store is the node's crash-safe state in one bbolt file: jobs and the history
// of their transitions, markers for chain events already handled, and cursors such as the
// last processed block. Every write is one bbolt transaction, fsynced before it returns,
// so the node can write a transition before its side effect and trust it after a crash.
package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"
)

var (
	// ErrNotFound means no job has the given ID.
	ErrNotFound = errors.New("job not found")
	// ErrExists means a job with the given ID is already stored.
	ErrExists = errors.New("job already exists")
	// ErrConflict means a job was not in the state a transition expected.
	ErrConflict = errors.New("job is not in the expected state")
)

var (
	bucketJobs    = []byte("jobs")
	bucketHistory = []byte("history")
	bucketSeen    = []byte("seen")
	bucketCursors = []byte("cursors")
	bucketLedger  = []byte("ledger")
)

// Job is a job as the node tracks it. Data holds the fields the state machine owns,
// encoded by it; the store only needs the ID and the state.
type Job struct {
	ID        string          `json:"id"`
	State     string          `json:"state"`
	CreatedAt time.Time       `json:"created_at"`
	UpdatedAt time.Time       `json:"updated_at"`
	Data      json.RawMessage `json:"data,omitempty"`
}

// Transition is one entry of a job's history.
type Transition struct {
	From string    `json:"from"`
	To   string    `json:"to"`
	At   time.Time `json:"at"`
	Note string    `json:"note,omitempty"`
}

// Store is an open state file.
type Store struct {
	db  *bolt.DB
	now func() time.Time
}

// Open opens (creating if needed) the state file at path. A second node on the same file
// waits up to a few seconds for the lock, then fails.
func Open(path string) (*Store, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return nil, fmt.Errorf("store %s: %w", path, err)
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 3 * time.Second})
	if err != nil {
		if errors.Is(err, bolt.ErrTimeout) {
			return nil, fmt.Errorf("store %s: locked by another process (is another gpunode daemon running on this data dir?)", path)
		}
		return nil, fmt.Errorf("store %s: %w", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketJobs, bucketHistory, bucketSeen, bucketCursors, bucketLedger} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("store %s: %w", path, err)
	}
	return &Store{db: db, now: time.Now}, nil
}

// Close closes the file.
func (s *Store) Close() error { return s.db.Close() }

// Create stores a new job in its first state.
func (s *Store) Create(j Job, note string) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		jobs := tx.Bucket(bucketJobs)
		if jobs.Get([]byte(j.ID)) != nil {
			return fmt.Errorf("job %s: %w", j.ID, ErrExists)
		}
		now := s.now().UTC()
		j.CreatedAt, j.UpdatedAt = now, now
		if err := put(jobs, j.ID, j); err != nil {
			return err
		}
		return appendHistory(tx, j.ID, Transition{To: j.State, At: now, Note: note})
	})
}

// Get returns a job.
func (s *Store) Get(id string) (Job, error) {
	var j Job
	err := s.db.View(func(tx *bolt.Tx) error {
		return get(tx.Bucket(bucketJobs), id, &j)
	})
	return j, err
}

// Advance moves a job from state from to state to, after update (which may be nil) has
// changed its data, in one transaction. If the job is not in state from, nothing changes
// and the error wraps ErrConflict: that is how a restarted node never does a step twice.
func (s *Store) Advance(id, from, to, note string, update func(*Job) error) (Job, error) {
	var j Job
	err := s.db.Update(func(tx *bolt.Tx) error {
		jobs := tx.Bucket(bucketJobs)
		if err := get(jobs, id, &j); err != nil {
			return err
		}
		if j.State != from {
			return fmt.Errorf("job %s: is %s, not %s: %w", id, j.State, from, ErrConflict)
		}
		if update != nil {
			if err := update(&j); err != nil {
				return fmt.Errorf("job %s: %w", id, err)
			}
		}
		now := s.now().UTC()
		j.State, j.UpdatedAt = to, now
		if err := put(jobs, id, j); err != nil {
			return err
		}
		return appendHistory(tx, id, Transition{From: from, To: to, At: now, Note: note})
	})
	return j, err
}

// List returns the jobs for which keep returns true (all jobs if keep is nil), by ID.
func (s *Store) List(keep func(Job) bool) ([]Job, error) {
	var out []Job
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketJobs).ForEach(func(k, v []byte) error {
			var j Job
			if err := json.Unmarshal(v, &j); err != nil {
				return fmt.Errorf("job %s: corrupt record: %w", k, err)
			}
			if keep == nil || keep(j) {
				out = append(out, j)
			}
			return nil
		})
	})
	return out, err
}

// History returns a job's transitions, oldest first.
func (s *Store) History(id string) ([]Transition, error) {
	var out []Transition
	err := s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketHistory).Bucket([]byte(id))
		if b == nil {
			return fmt.Errorf("job %s: %w", id, ErrNotFound)
		}
		return b.ForEach(func(_, v []byte) error {
			var t Transition
			if err := json.Unmarshal(v, &t); err != nil {
				return fmt.Errorf("job %s: corrupt history: %w", id, err)
			}
			out = append(out, t)
			return nil
		})
	})
	return out, err
}

// MarkSeen records that the event with this key was handled, and reports whether it had
// been already. A watcher calls it in the same step as it acts on the event.
func (s *Store) MarkSeen(key string) (already bool, err error) {
	err = s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketSeen)
		if b.Get([]byte(key)) != nil {
			already = true
			return nil
		}
		return b.Put([]byte(key), []byte(s.now().UTC().Format(time.RFC3339Nano)))
	})
	return already, err
}

// Entry is one movement of the node's money on chain: a reward or a validator fee
// credited, a withdrawal paid out. Wei is a decimal amount.
type Entry struct {
	Kind string `json:"kind"`
	// Wei is the amount in the token's smallest unit (wei for ETH), decimal.
	Wei   string `json:"wei"`
	JobID string `json:"job_id,omitempty"`
	// Token is the ERC-20 contract the amount is in; empty for ETH.
	Token string `json:"token,omitempty"`
	// TxHash is the transaction that credited or paid the amount.
	TxHash string    `json:"tx,omitempty"`
	At     time.Time `json:"at"`
}

// Book records e under key (the chain event it comes from) and reports whether it was new:
// an event handled twice is booked once.
func (s *Store) Book(key string, e Entry) (booked bool, err error) {
	if e.At.IsZero() {
		e.At = s.now().UTC()
	}
	raw, err := json.Marshal(e)
	if err != nil {
		return false, err
	}
	err = s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketLedger)
		if b.Get([]byte(key)) != nil {
			return nil
		}
		booked = true
		return b.Put([]byte(key), raw)
	})
	return booked, err
}

// Ledger returns every booked entry.
func (s *Store) Ledger() ([]Entry, error) {
	var out []Entry
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketLedger).ForEach(func(k, v []byte) error {
			var e Entry
			if err := json.Unmarshal(v, &e); err != nil {
				return fmt.Errorf("ledger entry %s: %w", k, err)
			}
			out = append(out, e)
			return nil
		})
	})
	return out, err
}

// Cursor returns a named cursor's value (0 if never set), such as the last processed block.
func (s *Store) Cursor(name string) (uint64, error) {
	var v uint64
	err := s.db.View(func(tx *bolt.Tx) error {
		raw := tx.Bucket(bucketCursors).Get([]byte(name))
		if raw == nil {
			return nil
		}
		return json.Unmarshal(raw, &v)
	})
	return v, err
}

// SetCursor sets a named cursor.
func (s *Store) SetCursor(name string, v uint64) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		raw, _ := json.Marshal(v)
		return tx.Bucket(bucketCursors).Put([]byte(name), raw)
	})
}

func put(b *bolt.Bucket, id string, j Job) error {
	raw, err := json.Marshal(j)
	if err != nil {
		return fmt.Errorf("job %s: %w", id, err)
	}
	return b.Put([]byte(id), raw)
}

func get(b *bolt.Bucket, id string, j *Job) error {
	raw := b.Get([]byte(id))
	if raw == nil {
		return fmt.Errorf("job %s: %w", id, ErrNotFound)
	}
	if err := json.Unmarshal(raw, j); err != nil {
		return fmt.Errorf("job %s: corrupt record: %w", id, err)
	}
	return nil
}

func appendHistory(tx *bolt.Tx, id string, t Transition) error {
	b, err := tx.Bucket(bucketHistory).CreateBucketIfNotExists([]byte(id))
	if err != nil {
		return err
	}
	seq, err := b.NextSequence()
	if err != nil {
		return err
	}
	raw, err := json.Marshal(t)
	if err != nil {
		return err
	}
	return b.Put(fmt.Appendf(nil, "%016x", seq), raw)
}
