package market

import (
	"context"
	"crypto/ecdsa"
	"fmt"
	"math/big"
	"time"

	"github.com/ethereum/go-ethereum"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"

	"github.com/gpunode/gpunode/contracts/bindings"
)

// The node's own JobMarket transactions. Each returns once confirmed; a call the contract
// would refuse returns its revert (contracts.IsRevert) without spending gas.

// RegisterProvider registers the node with its libp2p peer ID and benchmark report.
func (m *Market) RegisterProvider(ctx context.Context, peerID, reportCID string, reportHash common.Hash) (*types.Receipt, error) {
	return m.send(ctx, "register provider", nil, m.abi.PackRegisterProvider(peerID, reportCID, reportHash))
}

// AcceptJob accepts job id, locking bond (in ETH: sent with the call; in a token: approve
// the JobMarket first). validators is the job's list from its JobPosted event.
func (m *Market) AcceptJob(ctx context.Context, id *big.Int, validators []common.Address, ethBond *big.Int) (*types.Receipt, error) {
	return m.send(ctx, "accept job "+id.String(), ethBond, m.abi.PackAcceptJob(id, validators))
}

// SubmitResult submits the checkpoint of job id.
func (m *Market) SubmitResult(ctx context.Context, id *big.Int, checkpointCID string, resultHash common.Hash) (*types.Receipt, error) {
	return m.send(ctx, "submit job "+id.String(), nil, m.abi.PackSubmitResult(id, checkpointCID, resultHash))
}

// attestGasFloor is the gas an attestation gets at least. Validators attest at about the
// same time; each estimate sees the job before the others' attestations, but the one
// mined last decides the job and pays for crediting the provider and the sponsor too.
const attestGasFloor = 200_000

// Attest records the node's score for job id, as one of its validators.
func (m *Market) Attest(ctx context.Context, id *big.Int, validators []common.Address, resultHash common.Hash, score uint32) (*types.Receipt, error) {
	return m.sendWithGasFloor(ctx, "attest job "+id.String(), nil, m.abi.PackAttest(id, validators, resultHash, score), attestGasFloor)
}

// CancelJob withdraws job id while nobody has accepted it (only its sponsor may); the
// whole escrow is credited back.
func (m *Market) CancelJob(ctx context.Context, id *big.Int) (*types.Receipt, error) {
	return m.send(ctx, "cancel job "+id.String(), nil, m.abi.PackCancelJob(id))
}

// Expire ends job id after its deadline (anyone may), freeing the funds it holds.
func (m *Market) Expire(ctx context.Context, id *big.Int) (*types.Receipt, error) {
	return m.send(ctx, "expire job "+id.String(), nil, m.abi.PackExpire(id))
}

func (m *Market) send(ctx context.Context, what string, value *big.Int, data []byte) (*types.Receipt, error) {
	return m.sendWithGasFloor(ctx, what, value, data, 0)
}

func (m *Market) sendWithGasFloor(ctx context.Context, what string, value *big.Int, data []byte, floor uint64) (*types.Receipt, error) {
	if m.tx == nil {
		return nil, fmt.Errorf("%s: %w", what, ErrWatchOnly)
	}
	r, err := m.tx.SendWithGasFloor(ctx, m.contract, value, data, floor)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	return r, nil
}

// JobState is a job's state as the contract reports it.
type JobState uint8

// The contract's states (JobMarket.State).
const (
	StateNone JobState = iota
	StateOpen
	StateAccepted
	StateSubmitted
	StateCompleted
	StateRejected
	StateCancelled
	StateExpired
)

var stateNames = [...]string{"none", "open", "accepted", "submitted", "completed", "rejected", "cancelled", "expired"}

// String names the state as the contract does, in lower case.
func (s JobState) String() string {
	if int(s) < len(stateNames) {
		return stateNames[s]
	}
	return fmt.Sprintf("state(%d)", uint8(s))
}

// Now is the chain's time: the latest block's timestamp, which the contract's deadlines
// are compared with.
func (m *Market) Now(ctx context.Context) (time.Time, error) {
	h, err := m.client.HeaderByNumber(ctx, nil)
	if err != nil {
		return time.Time{}, err
	}
	return time.Unix(int64(h.Time), 0), nil
}

// Deadline is the deadline of the job's current state — to accept while open, to submit
// while accepted, to attest while submitted — past which expire may end it; false in a
// final state.
func Deadline(v bindings.JobMarketJob) (time.Time, bool) {
	switch JobState(v.State) {
	case StateOpen:
		return time.Unix(v.AcceptBy.Int64(), 0), true
	case StateAccepted, StateSubmitted:
		return time.Unix(v.Deadline.Int64(), 0), true
	}
	return time.Time{}, false
}

// PastDeadline tells whether the chain's time is past the deadline of the job's current
// state (the contract compares it with the block's time; the next block will be past it
// too), and otherwise how long until then.
func (m *Market) PastDeadline(ctx context.Context, v bindings.JobMarketJob) (past bool, wait time.Duration, err error) {
	deadline, ok := Deadline(v)
	if !ok {
		return false, 0, nil
	}
	now, err := m.Now(ctx)
	if err != nil {
		return false, 0, err
	}
	return now.After(deadline), max(deadline.Sub(now), 0), nil
}

// Job reads job id's on-chain record.
func (m *Market) Job(ctx context.Context, id *big.Int) (bindings.JobMarketJob, error) {
	out, err := m.client.CallContract(ctx, ethereum.CallMsg{To: &m.contract, Data: m.abi.PackGetJob(id)})
	if err != nil {
		return bindings.JobMarketJob{}, fmt.Errorf("job %s: %w", id, err)
	}
	return m.abi.UnpackGetJob(out)
}

// Account is the node's unlocked account, the zero address when watch-only.
func (m *Market) Account() common.Address {
	if m.tx == nil {
		return common.Address{}
	}
	return m.tx.From()
}

// Provider reads account's provider record: whether it is registered, and the hash of
// the benchmark report it registered with (zero when none).
func (m *Market) Provider(ctx context.Context, account common.Address) (registered bool, reportHash common.Hash, err error) {
	out, err := m.client.CallContract(ctx, ethereum.CallMsg{To: &m.contract, Data: m.abi.PackProviders(account)})
	if err != nil {
		return false, common.Hash{}, fmt.Errorf("provider %s: %w", account, err)
	}
	p, err := m.abi.UnpackProviders(out)
	if err != nil {
		return false, common.Hash{}, fmt.Errorf("provider %s: %w", account, err)
	}
	return p.RegisteredAt.Sign() > 0, p.ReportHash, nil
}

// Registered tells whether account is a registered provider.
func (m *Market) Registered(ctx context.Context, account common.Address) (bool, error) {
	ok, _, err := m.Provider(ctx, account)
	return ok, err
}

// Key is the node's unlocked account key, nil when watch-only. The p2p capacity record
// binds the peer ID to this account.
func (m *Market) Key() *ecdsa.PrivateKey {
	if m.tx == nil {
		return nil
	}
	return m.tx.key
}
