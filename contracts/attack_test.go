package contracts_test

import (
	"math/big"
	"testing"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/common/math"
	"github.com/ethereum/go-ethereum/crypto"

	"github.com/gpunode/gpunode/contracts/bindings"
	"github.com/gpunode/gpunode/contracts/bindings/mocks"
)

// submitted posts an ETH job and drives it to Submitted.
func (c *chain) submitted() *big.Int {
	c.t.Helper()
	id := c.post(c.params(common.Address{}, 2))
	c.accept(id, common.Address{})
	c.submit(id)
	return id
}

func TestReentrantWithdraw(t *testing.T) {
	c := newChain(t)
	// Someone else's escrow is what a reentrant withdraw would steal.
	c.post(c.params(common.Address{}, 2))
	attacker := mocks.NewReentrantAttacker()
	code := append(common.FromHex(mocks.ReentrantAttackerMetaData.Bin), attacker.PackConstructor(c.market)...)
	att := c.deploy(c.outsider, code)

	p := c.params(common.Address{}, 2)
	c.mustSend(c.outsider, att, escrow(p), attacker.PackPostAndCancel(market.PackPostJob(p)))
	if got := c.credit(common.Address{}, att); got.Cmp(escrow(p)) != 0 {
		t.Fatalf("attacker credit %s, want %s", got, escrow(p))
	}
	marketBefore := c.balance(common.Address{}, c.market)
	c.mustSend(c.outsider, att, nil, attacker.PackAttack())

	get := func(data []byte, unpack func([]byte) (*big.Int, error)) *big.Int {
		v, err := unpack(c.call(att, data))
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	if n := get(attacker.PackReentries(), attacker.UnpackReentries); n.Sign() == 0 {
		t.Fatal("attacker never re-entered: the test does not exercise the guard")
	}
	if n := get(attacker.PackReentrySuccesses(), attacker.UnpackReentrySuccesses); n.Sign() != 0 {
		t.Errorf("%s reentrant withdrawals succeeded", n)
	}
	if got := get(attacker.PackReceived(), attacker.UnpackReceived); got.Cmp(escrow(p)) != 0 {
		t.Errorf("attacker received %s, want exactly its credit %s", got, escrow(p))
	}
	if got, want := c.balance(common.Address{}, c.market), new(big.Int).Sub(marketBefore, escrow(p)); got.Cmp(want) != 0 {
		t.Errorf("market holds %s, want %s", got, want)
	}
	c.mustRevert("NothingToWithdraw", c.outsider, att, nil, attacker.PackAttack())
}

func TestUnauthorizedCallers(t *testing.T) {
	c := newChain(t)
	id := c.post(c.params(common.Address{}, 2))
	c.mustRevert("NotRegistered", c.outsider, c.market, bond, market.PackAcceptJob(id, c.valAddrs))
	c.mustRevert("WrongValue", c.provider, c.market, new(big.Int).Sub(bond, big.NewInt(1)), market.PackAcceptJob(id, c.valAddrs))
	c.mustRevert("WrongCommitment", c.provider, c.market, bond, market.PackAcceptJob(id, c.valAddrs[:2]))
	t.Run("validator accepts", func(t *testing.T) {
		// A validator registered as a provider would judge its own result.
		v := c.vals[0]
		c.mustSend(v, c.market, nil, market.PackRegisterProvider("12D3KooWVal", "bafyv", resultHash))
		c.mustRevert("BadParams", v, c.market, bond, market.PackAcceptJob(id, c.valAddrs))
	})
	c.accept(id, common.Address{})
	c.mustRevert("BadState", c.other, c.market, bond, market.PackAcceptJob(id, c.valAddrs))

	t.Run("submit by a provider not assigned", func(t *testing.T) {
		c.mustRevert("NotProvider", c.other, c.market, nil, market.PackSubmitResult(id, "bafyx", resultHash))
		c.mustRevert("NotProvider", c.sponsor, c.market, nil, market.PackSubmitResult(id, "bafyx", resultHash))
	})
	t.Run("attest before submit", func(t *testing.T) {
		c.mustRevert("BadState", c.vals[0], c.market, nil, market.PackAttest(id, c.valAddrs, resultHash, threshold))
	})
	c.submit(id)
	t.Run("attest by a non-validator", func(t *testing.T) {
		c.mustRevert("NotValidator", c.outsider, c.market, nil, market.PackAttest(id, c.valAddrs, resultHash, threshold))
		c.mustRevert("NotValidator", c.provider, c.market, nil, market.PackAttest(id, c.valAddrs, resultHash, threshold))
		forged := append([]common.Address{c.outsider.addr}, c.valAddrs[1:]...)
		c.mustRevert("WrongCommitment", c.outsider, c.market, nil, market.PackAttest(id, forged, resultHash, threshold))
	})
	t.Run("attest twice", func(t *testing.T) {
		c.attest(id, 0, threshold-1)
		c.mustRevert("AlreadyAttested", c.vals[0], c.market, nil, market.PackAttest(id, c.valAddrs, resultHash, threshold))
		c.mustRevert("AlreadyAttested", c.vals[0], c.market, nil, market.PackAttest(id, c.valAddrs, resultHash, threshold-1))
		if j := c.job(id); j.Passes != 0 || j.Fails != 1 {
			t.Errorf("passes %d fails %d after a double attest", j.Passes, j.Fails)
		}
	})
}

func TestSubmitAfterDeadline(t *testing.T) {
	c := newChain(t)
	id := c.post(c.params(common.Address{}, 2))
	c.accept(id, common.Address{})
	c.warp(runWindow + 1)
	c.mustRevert("DeadlinePassed", c.provider, c.market, nil, market.PackSubmitResult(id, "bafyx", resultHash))
}

func TestTokenQuirks(t *testing.T) {
	c := newChain(t)
	t.Run("returns false", func(t *testing.T) {
		tok := c.newToken(mocks.FalseTokenMetaData.Bin)
		c.mustRevert("SafeERC20FailedOperation", c.sponsor, c.market, nil, market.PackPostJob(c.params(tok, 2)))
	})
	t.Run("takes a fee", func(t *testing.T) {
		tok := c.newToken(mocks.FeeTokenMetaData.Bin)
		c.mustRevert("TokenAmountMismatch", c.sponsor, c.market, nil, market.PackPostJob(c.params(tok, 2)))
	})
	t.Run("ETH sent to a token job", func(t *testing.T) {
		tok := c.newToken(mocks.MockTokenMetaData.Bin)
		c.mustRevert("WrongValue", c.sponsor, c.market, big.NewInt(1), market.PackPostJob(c.params(tok, 2)))
	})
}

func TestBadParams(t *testing.T) {
	c := newChain(t)
	for name, mod := range map[string]func(p *bindings.JobMarketJobParams){
		"no validators":       func(p *bindings.JobMarketJobParams) { p.Validators = nil },
		"quorum zero":         func(p *bindings.JobMarketJobParams) { p.Quorum = 0 },
		"quorum too big":      func(p *bindings.JobMarketJobParams) { p.Quorum = 4 },
		"duplicate validator": func(p *bindings.JobMarketJobParams) { p.Validators = []common.Address{c.vals[0].addr, c.vals[0].addr} },
		"sponsor validates":   func(p *bindings.JobMarketJobParams) { p.Validators = []common.Address{c.sponsor.addr} },
		"accept in the past":  func(p *bindings.JobMarketJobParams) { p.AcceptBy = big.NewInt(1) },
		"zero reward":         func(p *bindings.JobMarketJobParams) { p.Reward = new(big.Int) },
		"empty manifest":      func(p *bindings.JobMarketJobParams) { p.ManifestCID = "" },
	} {
		t.Run(name, func(t *testing.T) {
			p := c.params(common.Address{}, 2)
			mod(&p)
			c.mustRevert("BadParams", c.sponsor, c.market, escrow(p), market.PackPostJob(p))
		})
	}
}

// eip712Digest computes the attestation digest independently of the contract.
func eip712Digest(chainID int64, contract common.Address, jobID *big.Int, result common.Hash, score uint32) []byte {
	domainType := crypto.Keccak256([]byte("EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"))
	domain := crypto.Keccak256(domainType, crypto.Keccak256([]byte("gpunode JobMarket")), crypto.Keccak256([]byte("1")),
		math.U256Bytes(big.NewInt(chainID)), common.LeftPadBytes(contract.Bytes(), 32))
	typeHash := crypto.Keccak256([]byte("Attestation(uint256 jobId,bytes32 resultHash,uint32 score)"))
	st := crypto.Keccak256(typeHash, math.U256Bytes(new(big.Int).Set(jobID)), result.Bytes(), common.LeftPadBytes(big.NewInt(int64(score)).Bytes(), 32))
	return crypto.Keccak256([]byte{0x19, 0x01}, domain, st)
}

func sign(t *testing.T, a account, digest []byte) []byte {
	t.Helper()
	sig, err := crypto.Sign(digest, a.key)
	if err != nil {
		t.Fatal(err)
	}
	sig[64] += 27
	return sig
}

// TestSignatureReplay checks that a signed attestation counts once, only for the job,
// result, score, contract and chain it was signed for.
func TestSignatureReplay(t *testing.T) {
	c := newChain(t)
	jobA := c.submitted()
	jobB := c.submitted()
	other := c.deploy(c.deployer, common.FromHex(bindings.JobMarketMetaData.Bin))

	// The Go digest matches the contract's, so the variants below differ only in what
	// each test changes.
	onChain, err := market.UnpackAttestationDigest(c.call(c.market, market.PackAttestationDigest(jobA, resultHash, threshold)))
	if err != nil {
		t.Fatal(err)
	}
	if want := eip712Digest(1337, c.market, jobA, resultHash, threshold); common.Hash(onChain) != common.BytesToHash(want) {
		t.Fatalf("contract digest %x, Go digest %x", onChain, want)
	}

	v0 := c.vals[0]
	sigA := sign(t, v0, eip712Digest(1337, c.market, jobA, resultHash, threshold))
	attestSig := func(id *big.Int, score uint32, sig []byte) []byte {
		return market.PackAttestWithSig(id, c.valAddrs, resultHash, score, sig)
	}
	t.Run("another job", func(t *testing.T) {
		c.mustRevert("NotValidator", c.outsider, c.market, nil, attestSig(jobB, threshold, sigA))
	})
	t.Run("another score", func(t *testing.T) {
		c.mustRevert("NotValidator", c.outsider, c.market, nil, attestSig(jobA, 0, sigA))
	})
	t.Run("another contract", func(t *testing.T) {
		// Same job id and result on a second market whose job is Submitted too.
		saved := c.market
		c.market = other
		c.mustSend(c.provider, c.market, nil, market.PackRegisterProvider("12D3KooWProvider", "bafyreport", resultHash))
		id := c.submitted()
		if id.Cmp(jobA) != 0 {
			t.Fatalf("job id %s on the second market, want %s", id, jobA)
		}
		c.mustRevert("NotValidator", c.outsider, c.market, nil, attestSig(id, threshold, sigA))
		c.market = saved
	})
	t.Run("another chain", func(t *testing.T) {
		sig := sign(t, v0, eip712Digest(1, c.market, jobA, resultHash, threshold))
		c.mustRevert("NotValidator", c.outsider, c.market, nil, attestSig(jobA, threshold, sig))
	})
	t.Run("valid once", func(t *testing.T) {
		r := c.mustSend(c.outsider, c.market, nil, attestSig(jobA, threshold, sigA))
		ev, err := market.UnpackAttestedEvent(r.Logs[0])
		if err != nil || ev.Validator != v0.addr {
			t.Fatalf("attested event %+v %v", ev, err)
		}
		c.mustRevert("AlreadyAttested", c.outsider, c.market, nil, attestSig(jobA, threshold, sigA))
		c.mustRevert("AlreadyAttested", v0, c.market, nil, market.PackAttest(jobA, c.valAddrs, resultHash, threshold))
	})
	t.Run("malleable signature", func(t *testing.T) {
		// The same signature with s flipped to the upper half must not count again.
		sig := sign(t, c.vals[1], eip712Digest(1337, c.market, jobA, resultHash, threshold))
		n := crypto.S256().Params().N
		s := new(big.Int).SetBytes(sig[32:64])
		s.Sub(n, s)
		flipped := append(append(append([]byte{}, sig[:32]...), common.LeftPadBytes(s.Bytes(), 32)...), 55-sig[64])
		c.mustRevert("ECDSAInvalidSignatureS", c.outsider, c.market, nil, attestSig(jobA, threshold, flipped))
	})
}
