package node

import (
	"context"
	"crypto/sha256"
	"math/big"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/common"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/gpunode/gpunode/contracts/bindings"
	"github.com/gpunode/gpunode/node/api"
)

const ledgerHelp = `# HELP gpunode_earned_wei_total Credited to the node by the JobMarket, in the smallest unit of token ("ETH": wei; else the ERC-20 contract's address): rewards as provider, fees as validator.
# TYPE gpunode_earned_wei_total counter
`

// TestTokenEarnings: a job paid in an ERC-20 token is booked under its token — the
// provider's reward and withdrawal, the validator's fee — in the ledger, in status (with
// the credit still on chain in that token) and in the metrics, apart from ETH.
func TestTokenEarnings(t *testing.T) {
	dep := startDevchain(t)
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	content := &memContent{blobs: map[string][]byte{}, trees: map[string]string{}}
	provider, validator, sponsor := newChainNode(t, dep, 1, content), newChainNode(t, dep, 2, content), newChainNode(t, dep, 4, content)
	if _, err := provider.market.RegisterProvider(ctx, "12D3KooWtokenprovider", "", common.Hash{}); err != nil {
		t.Fatal(err)
	}
	reward, fee := big.NewInt(7_000), big.NewInt(300)
	vals := []common.Address{validator.addr}
	h, err := provider.market.Now(ctx)
	if err != nil {
		t.Fatal(err)
	}
	id, _, err := sponsor.market.PostJob(ctx, bindings.JobMarketJobParams{
		Token: dep.Token, Reward: reward, ValidatorFee: fee, Bond: new(big.Int), Threshold: 900_000, Quorum: 1,
		Validators: vals, AcceptBy: big.NewInt(h.Add(time.Hour).Unix()), RunWindow: 3600, AttestWindow: 3600,
		ManifestCID: "bafymanifest", ManifestHash: sha256.Sum256([]byte("manifest")),
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := provider.market.AcceptJobWithTokenBond(ctx, id, vals, dep.Token, new(big.Int)); err != nil {
		t.Fatal(err)
	}
	resultHash := common.HexToHash("0x1234")
	if _, err := provider.market.SubmitResult(ctx, id, "bafycheckpoint", resultHash); err != nil {
		t.Fatal(err)
	}
	if _, err := validator.market.Attest(ctx, id, vals, resultHash, 950_000); err != nil {
		t.Fatal(err)
	}

	token := dep.Token.Hex()
	waitEarnings := func(n *chainNode, want api.TokenEarnings) *api.Earnings {
		t.Helper()
		var e *api.Earnings
		for deadline := time.Now().Add(time.Minute); ; time.Sleep(20 * time.Millisecond) {
			e = n.work.ledger.Status(ctx)
			if len(e.Tokens) == 1 && e.Tokens[0] == want {
				return e
			}
			if time.Now().After(deadline) {
				t.Fatalf("earnings %+v; want one token entry %+v", e, want)
			}
		}
	}
	// Credited, not yet withdrawn: the credit on chain is in the token.
	waitEarnings(provider, api.TokenEarnings{Token: token, Rewards: "7000", Fees: "0", Withdrawn: "0", Credit: "7000"})
	ve := waitEarnings(validator, api.TokenEarnings{Token: token, Rewards: "0", Fees: "300", Withdrawn: "0", Credit: "300"})
	if ve.FeesWei != "0" || ve.RewardsWei != "0" {
		t.Errorf("validator's ETH earnings %+v: a token fee was counted as ETH", ve)
	}

	// The provider withdraws the token; the withdrawal is booked under it.
	if _, amount, err := provider.market.Withdraw(ctx, dep.Token); err != nil || amount.Cmp(reward) != 0 {
		t.Fatalf("withdraw token: %v %v", amount, err)
	}
	pe := waitEarnings(provider, api.TokenEarnings{Token: token, Rewards: "7000", Fees: "0", Withdrawn: "7000", Credit: "0"})
	if pe.RewardsWei != "0" || pe.WithdrawnWei != "0" {
		t.Errorf("provider's ETH earnings %+v: token amounts counted as ETH", pe)
	}
	entries, err := provider.store.Ledger()
	if err != nil {
		t.Fatal(err)
	}
	var kinds []string
	rpc := dialClient(t, dep)
	for _, e := range entries {
		if e.Token != token {
			t.Errorf("ledger entry %+v not under token %s", e, token)
		}
		if r, err := rpc.TransactionReceipt(ctx, common.HexToHash(e.TxHash)); err != nil || r.Status != 1 {
			t.Errorf("ledger entry %+v: its transaction %s has no successful receipt (%v)", e, e.TxHash, err)
		}
		kinds = append(kinds, e.Kind+":"+e.Wei)
	}
	slices.Sort(kinds)
	if got := strings.Join(kinds, ","); got != "reward:7000,withdrawal:7000" {
		t.Errorf("ledger %s", got)
	}

	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(provider.work.ledger.Collector())
	if err := testutil.GatherAndCompare(reg, strings.NewReader(ledgerHelp+`gpunode_earned_wei_total{kind="fee",token="ETH"} 0
gpunode_earned_wei_total{kind="fee",token="`+token+`"} 0
gpunode_earned_wei_total{kind="reward",token="ETH"} 0
gpunode_earned_wei_total{kind="reward",token="`+token+`"} 7000
# HELP gpunode_withdrawn_wei_total Withdrawn by the node from the JobMarket, in the smallest unit of token ("ETH": wei; else the ERC-20 contract's address).
# TYPE gpunode_withdrawn_wei_total counter
gpunode_withdrawn_wei_total{token="ETH"} 0
gpunode_withdrawn_wei_total{token="`+token+`"} 7000
`)); err != nil {
		t.Error(err)
	}
}
