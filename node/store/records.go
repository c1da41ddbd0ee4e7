package store

import (
	"encoding/json"
	"fmt"
	"strings"

	bolt "go.etcd.io/bbolt"
)

// Records are named sets of JSON values beside the jobs, for a subsystem that keeps its
// own books in the node's state file (the pool coordinator's payouts ledger). Each set is
// a bucket of its own; one Update is one fsynced transaction.

// RecordTx reads and writes one set of records inside a transaction.
type RecordTx struct {
	b *bolt.Bucket
}

// Get decodes the record at key into v and reports whether there was one.
func (r RecordTx) Get(key string, v any) (bool, error) {
	raw := r.b.Get([]byte(key))
	if raw == nil {
		return false, nil
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return true, fmt.Errorf("record %s: %w", key, err)
	}
	return true, nil
}

// Put stores v at key.
func (r RecordTx) Put(key string, v any) error {
	if !r.b.Writable() {
		return fmt.Errorf("record %s: read-only transaction", key)
	}
	raw, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("record %s: %w", key, err)
	}
	return r.b.Put([]byte(key), raw)
}

// Delete removes the record at key, if any.
func (r RecordTx) Delete(key string) error { return r.b.Delete([]byte(key)) }

// Each calls fn with every record whose key starts with prefix, in key order.
func (r RecordTx) Each(prefix string, fn func(key string, raw []byte) error) error {
	c := r.b.Cursor()
	for k, v := c.Seek([]byte(prefix)); k != nil && strings.HasPrefix(string(k), prefix); k, v = c.Next() {
		if err := fn(string(k), v); err != nil {
			return err
		}
	}
	return nil
}

func recordBucket(set string) []byte { return []byte("records/" + set) }

// UpdateRecords runs fn on the set in one transaction: all its writes land, or none.
func (s *Store) UpdateRecords(set string, fn func(RecordTx) error) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(recordBucket(set))
		if err != nil {
			return err
		}
		return fn(RecordTx{b})
	})
}

// ViewRecords runs fn on a consistent read-only view of the set (empty if never written).
func (s *Store) ViewRecords(set string, fn func(RecordTx) error) error {
	return s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(recordBucket(set))
		if b == nil {
			return nil
		}
		return fn(RecordTx{b})
	})
}
