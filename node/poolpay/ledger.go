// Package poolpay is a pool coordinator's payouts: the ledger of each paid job's split
// among the members that worked on it (Book), the publisher that turns the booked shares
// into PoolPayouts epochs the members claim from (Publisher), the contract the
// coordinator deploys on its first start (Contract), and the protocol a member asks its
// coordinator for its payouts with (/gpunode/pool/payouts/1.0.0: Server, Fetch).
package poolpay

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"sort"
	"time"

	"github.com/ethereum/go-ethereum/common"

	"github.com/gpunode/gpunode/node/pool"
	"github.com/gpunode/gpunode/node/store"
)

// recordSet is the ledger's set of records in the coordinator's store.
const recordSet = "poolpay"

// Epoch states in the ledger.
const (
	// EpochPending: built and its jobs assigned to it, the publish transaction maybe sent.
	EpochPending = "pending"
	// EpochPublished: on chain, funded.
	EpochPublished = "published"
)

// Booking is one job's split as the ledger keeps it.
type Booking struct {
	JobID    string      `json:"job_id"`
	Split    pool.Split  `json:"split"`
	Works    []pool.Work `json:"works"`
	BookedAt time.Time   `json:"booked_at"`
	// Epoch is the epoch that pays the job's shares (and Contract its contract); nil
	// while unpublished.
	Epoch    *uint64 `json:"epoch,omitempty"`
	Contract string  `json:"contract,omitempty"`
}

// EpochRecord is an epoch the coordinator built, and how far its publication went.
type EpochRecord struct {
	pool.Epoch
	Jobs        []string  `json:"jobs"`
	State       string    `json:"state"`
	PreparedAt  time.Time `json:"prepared_at"`
	PublishedAt time.Time `json:"published_at,omitzero"`
	TxHash      string    `json:"tx,omitempty"`
	GasUsed     uint64    `json:"gas_used,omitempty"`
}

// Ledger is the coordinator's book of what each member earned on each job.
type Ledger struct {
	st     *store.Store
	feeBPS uint32
	log    *slog.Logger
	now    func() time.Time
}

// NewLedger keeps the ledger in st; each job's reward is split with the pool's fee of
// feeBPS basis points.
func NewLedger(st *store.Store, feeBPS uint32, log *slog.Logger) (*Ledger, error) {
	if feeBPS > pool.MaxBPS {
		return nil, fmt.Errorf("pool payouts: fee of %d basis points is above 100 %%", feeBPS)
	}
	return &Ledger{st: st, feeBPS: feeBPS, log: log.With("component", "poolpay"), now: time.Now}, nil
}

// FeeBPS is the pool's fee.
func (l *Ledger) FeeBPS() uint32 { return l.feeBPS }

func jobKey(id string) string { return "job/" + id }

func epochKey(contract common.Address, n uint64) string {
	return fmt.Sprintf("epoch/%s/%020d", contract.Hex(), n)
}

// ErrBadBooking means a job's reward or work cannot be split.
var ErrBadBooking = errors.New("cannot book the job's split")

// Book splits job jobID's reward among the members by their work (pool.Divide, less the
// pool's fee) and books the shares, once: booking a job again changes nothing. A split
// that can never be booked wraps pool.ErrBadReward, ErrBadWork or ErrNoWork (besides
// ErrBadBooking); other errors (the store) may pass on a retry.
func (l *Ledger) Book(_ context.Context, jobID string, reward *big.Int, work []pool.Work) error {
	if jobID == "" || len(jobID) > 128 {
		return fmt.Errorf("%w: job id %q: %w", ErrBadBooking, jobID, pool.ErrBadWork)
	}
	if reward == nil || reward.Sign() <= 0 {
		return fmt.Errorf("%w: job %s: %w %v: nothing to split", ErrBadBooking, jobID, pool.ErrBadReward, reward)
	}
	split, err := pool.Divide(reward, l.feeBPS, work)
	if err != nil {
		return fmt.Errorf("%w: job %s: %w", ErrBadBooking, jobID, err)
	}
	b := Booking{JobID: jobID, Split: split, Works: work, BookedAt: l.now().UTC()}
	var again bool
	err = l.st.UpdateRecords(recordSet, func(r store.RecordTx) error {
		var old Booking
		ok, err := r.Get(jobKey(jobID), &old)
		if ok || err != nil {
			again = true
			return err
		}
		return r.Put(jobKey(jobID), b)
	})
	if err != nil {
		return fmt.Errorf("job %s: book pool split: %w", jobID, err)
	}
	if again {
		l.log.Debug("pool split already booked", "job_id", jobID)
		return nil
	}
	l.log.Info("booked pool split", "job_id", jobID, "reward_wei", reward, "fee_wei", split.Fee, "members", len(split.Shares))
	return nil
}

// Jobs lists every booked job, oldest first.
func (l *Ledger) Jobs() ([]Booking, error) {
	var out []Booking
	err := l.st.ViewRecords(recordSet, func(r store.RecordTx) error {
		return r.Each("job/", func(k string, raw []byte) error {
			var b Booking
			if _, err := r.Get(k, &b); err != nil {
				return err
			}
			out = append(out, b)
			return nil
		})
	})
	sort.SliceStable(out, func(i, j int) bool { return out[i].BookedAt.Before(out[j].BookedAt) })
	return out, err
}

// MemberShares lists one member's share of each job it worked on, oldest first.
func (l *Ledger) MemberShares(member common.Address) ([]Booking, []pool.Share, error) {
	jobs, err := l.Jobs()
	if err != nil {
		return nil, nil, err
	}
	var bs []Booking
	var shares []pool.Share
	for _, b := range jobs {
		for _, s := range b.Split.Shares {
			if s.Member == member {
				bs, shares = append(bs, b), append(shares, s)
			}
		}
	}
	return bs, shares, nil
}

// Epochs lists the epochs built for contract, by number.
func (l *Ledger) Epochs(contract common.Address) ([]EpochRecord, error) {
	var out []EpochRecord
	err := l.st.ViewRecords(recordSet, func(r store.RecordTx) error {
		return r.Each(fmt.Sprintf("epoch/%s/", contract.Hex()), func(k string, _ []byte) error {
			var e EpochRecord
			if _, err := r.Get(k, &e); err != nil {
				return err
			}
			out = append(out, e)
			return nil
		})
	})
	return out, err
}

// Epoch returns one epoch of contract.
func (l *Ledger) Epoch(contract common.Address, n uint64) (EpochRecord, bool, error) {
	var e EpochRecord
	var ok bool
	err := l.st.ViewRecords(recordSet, func(r store.RecordTx) error {
		var err error
		ok, err = r.Get(epochKey(contract, n), &e)
		return err
	})
	return e, ok, err
}

// pending returns the epoch whose publication is under way, if any (of any contract).
func (l *Ledger) pending() (EpochRecord, bool, error) {
	var found EpochRecord
	var ok bool
	err := l.st.ViewRecords(recordSet, func(r store.RecordTx) error {
		return r.Each("epoch/", func(k string, _ []byte) error {
			var e EpochRecord
			if _, err := r.Get(k, &e); err != nil {
				return err
			}
			if e.State == EpochPending {
				found, ok = e, true
			}
			return nil
		})
	})
	return found, ok, err
}

// ErrNothingToPublish means no booked share is waiting for an epoch.
var ErrNothingToPublish = errors.New("no booked shares to publish")

// prepare builds epoch number n of contract from every unpublished job and records it as
// pending, its jobs assigned to it, in one transaction; or rebuilds old (a pending epoch)
// under a new contract or number, for the same jobs.
func (l *Ledger) prepare(contract common.Address, n uint64, old *EpochRecord) (EpochRecord, error) {
	var rec EpochRecord
	err := l.st.UpdateRecords(recordSet, func(r store.RecordTx) error {
		var jobs []Booking
		pick := func(k string, _ []byte) error {
			var b Booking
			if _, err := r.Get(k, &b); err != nil {
				return err
			}
			if old != nil || b.Epoch == nil {
				jobs = append(jobs, b)
			}
			return nil
		}
		if old != nil {
			for _, id := range old.Jobs {
				if err := pick(jobKey(id), nil); err != nil {
					return err
				}
			}
		} else if err := r.Each("job/", pick); err != nil {
			return err
		}
		if len(jobs) == 0 {
			return ErrNothingToPublish
		}
		splits := make([]pool.Split, len(jobs))
		for i, b := range jobs {
			splits[i] = b.Split
		}
		e, err := pool.NewEpoch(contract, n, pool.Owed(splits...))
		if err != nil {
			return err
		}
		rec = EpochRecord{Epoch: e, State: EpochPending, PreparedAt: l.now().UTC()}
		if old != nil {
			if err := r.Delete(epochKey(old.Contract, old.Number)); err != nil {
				return err
			}
		}
		for _, b := range jobs {
			num := n
			b.Epoch, b.Contract = &num, contract.Hex()
			rec.Jobs = append(rec.Jobs, b.JobID)
			if err := r.Put(jobKey(b.JobID), b); err != nil {
				return err
			}
		}
		if ok, _ := r.Get(epochKey(contract, n), &EpochRecord{}); ok {
			return fmt.Errorf("epoch %d of %s is already in the ledger", n, contract)
		}
		return r.Put(epochKey(contract, n), rec)
	})
	return rec, err
}

// markPublished records that rec is on chain.
func (l *Ledger) markPublished(rec EpochRecord, tx string, gas uint64) (EpochRecord, error) {
	rec.State, rec.PublishedAt, rec.TxHash, rec.GasUsed = EpochPublished, l.now().UTC(), tx, gas
	err := l.st.UpdateRecords(recordSet, func(r store.RecordTx) error {
		return r.Put(epochKey(rec.Contract, rec.Number), rec)
	})
	return rec, err
}
