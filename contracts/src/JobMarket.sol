// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.30;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {ReentrancyGuardTransient} from "@openzeppelin/contracts/utils/ReentrancyGuardTransient.sol";
import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";

/// @title JobMarket: escrowed ML training jobs, checked by validators before payment.
/// @notice Lifecycle of a job:
///   Open --acceptJob--> Accepted --submitResult--> Submitted --attest*--> Completed | Rejected
///   Open --cancelJob--> Cancelled
///   Open | Accepted | Submitted --expire (after its deadline)--> Expired
/// Funds never leave by push: every payout is a credit that its owner withdraws.
///
/// Money rules:
///   - The sponsor escrows reward + validatorFee * validators at post.
///   - Every attestation credits its validator validatorFee at once (the work was done).
///   - Completed: provider gets reward + bond back; fees not earned go back to the sponsor.
///   - Rejected: sponsor gets reward + the provider's bond (slashed) + unearned fees.
///   - Expired while Open: sponsor gets everything back.
///   - Expired while Accepted (provider missed the run deadline): sponsor gets reward,
///     fees and the slashed bond.
///   - Expired while Submitted (validators missed the attest deadline): the provider is
///     not at fault and gets the bond back; sponsor gets reward and unearned fees.
/// Only exact-amount tokens are supported: a token that takes a fee on transfer or does
/// not return true is refused.
contract JobMarket is ReentrancyGuardTransient, EIP712 {
    using SafeERC20 for IERC20;

    enum State {
        None,
        Open,
        Accepted,
        Submitted,
        Completed,
        Rejected,
        Cancelled,
        Expired
    }

    /// Storage is packed so that a whole job lifecycle stays cheap: strings (CIDs, peer
    /// IDs) are only emitted in events; the chain keeps their hashes.
    struct Job {
        // slot 0 (written at post)
        address sponsor;
        uint40 acceptBy; // last second a provider may accept
        uint32 runWindow; // seconds from accept to the submit deadline
        uint8 quorum; // passing attestations needed to complete
        uint8 validatorCount;
        // slot 1 (written at post)
        address token; // address(0) = ETH
        uint96 bond; // bond the provider must lock at accept
        // slot 2 (written at accept). The state lives here, beside what every later step
        // touches, so that submit and attest write one slot; None with a sponsor set is Open.
        address provider;
        uint40 deadline; // submit deadline while Accepted, attest deadline while Submitted
        State state;
        uint8 passes;
        uint8 fails;
        uint16 attested; // bit i set: validators[i] attested
        uint8 activeQuorum; // quorum, copied here at accept so attest reads one slot less
        // slot 3 (written at post)
        uint96 reward;
        uint96 validatorFee;
        uint32 threshold; // a score >= threshold passes
        uint32 attestWindow; // seconds from submit to the attest deadline
        // slot 4: keccak256(abi.encode(validators)) while Open/Accepted; from submit on,
        // keccak256(abi.encode(that, resultHash)), so that an attestation names the result
        // it judged and the chain pays one storage write for both. The manifest hash and
        // the result hash themselves live in the JobPosted and ResultSubmitted events.
        bytes32 commitment;
    }

    /// Parameters of postJob.
    struct JobParams {
        address token;
        uint96 reward;
        uint96 validatorFee;
        uint96 bond;
        uint32 threshold;
        uint8 quorum;
        address[] validators;
        uint40 acceptBy;
        uint32 runWindow;
        uint32 attestWindow;
        string manifestCID;
        bytes32 manifestHash;
    }

    struct Provider {
        bytes32 peerIdHash;
        bytes32 reportHash;
        uint40 registeredAt;
    }

    uint256 public constant MAX_VALIDATORS = 16;
    bytes32 public constant ATTESTATION_TYPEHASH =
        keccak256("Attestation(uint256 jobId,bytes32 resultHash,uint32 score)");

    uint256 public jobCount;
    mapping(uint256 jobId => Job) internal _jobs;
    mapping(address provider => Provider) public providers;
    /// Pull-payment balances per token (address(0) = ETH).
    mapping(address token => mapping(address account => uint256)) public credit;

    event ProviderRegistered(
        address indexed provider, string peerId, bytes32 peerIdHash, string reportCID, bytes32 reportHash
    );
    event JobPosted(
        uint256 indexed jobId,
        address indexed sponsor,
        address indexed token,
        uint256 reward,
        uint256 validatorFee,
        uint256 bond,
        uint32 threshold,
        uint8 quorum,
        address[] validators,
        uint40 acceptBy,
        uint32 runWindow,
        uint32 attestWindow,
        string manifestCID,
        bytes32 manifestHash
    );
    event JobCancelled(uint256 indexed jobId);
    event JobAccepted(uint256 indexed jobId, address indexed provider, uint40 submitBy);
    event ResultSubmitted(
        uint256 indexed jobId, address indexed provider, string checkpointCID, bytes32 resultHash, uint40 attestBy
    );
    event Attested(uint256 indexed jobId, address indexed validator, uint32 score, bool pass);
    event JobCompleted(uint256 indexed jobId, address indexed provider);
    event JobRejected(uint256 indexed jobId, address indexed provider);
    event JobExpired(uint256 indexed jobId, State from);
    event Withdrawn(address indexed account, address indexed token, uint256 amount);

    error BadParams(string reason);
    error BadState(State state);
    error NotRegistered();
    error NotProvider();
    error NotSponsor();
    error NotValidator();
    error AlreadyAttested();
    error DeadlinePassed();
    error DeadlineNotPassed();
    error WrongValue();
    error WrongCommitment();
    error TokenAmountMismatch(uint256 expected, uint256 received);
    error NothingToWithdraw();
    error TransferFailed();

    constructor() EIP712("gpunode JobMarket", "1") {}

    // ---- providers ----

    /// Registers (or updates) the caller as a provider with its libp2p peer ID and the CID of
    /// its signed benchmark report.
    function registerProvider(string calldata peerId, string calldata reportCID, bytes32 reportHash) external {
        if (bytes(peerId).length == 0 || bytes(peerId).length > 128 || bytes(reportCID).length > 128) {
            revert BadParams("peer id or report cid length");
        }
        bytes32 peerIdHash = keccak256(bytes(peerId));
        providers[msg.sender] =
            Provider({peerIdHash: peerIdHash, reportHash: reportHash, registeredAt: uint40(block.timestamp)});
        emit ProviderRegistered(msg.sender, peerId, peerIdHash, reportCID, reportHash);
    }

    // ---- sponsor side ----

    /// Posts a job, escrowing reward + validatorFee * validators.length in ETH (msg.value)
    /// or in the token (pulled with transferFrom; approve it first).
    function postJob(JobParams calldata p) external payable nonReentrant returns (uint256 jobId) {
        uint256 n = p.validators.length;
        if (n == 0 || n > MAX_VALIDATORS) revert BadParams("validators");
        if (p.quorum == 0 || p.quorum > n) revert BadParams("quorum");
        if (p.reward == 0) revert BadParams("reward");
        if (p.acceptBy <= block.timestamp) revert BadParams("acceptBy");
        if (p.runWindow == 0 || p.attestWindow == 0) revert BadParams("windows");
        if (bytes(p.manifestCID).length == 0 || bytes(p.manifestCID).length > 128) revert BadParams("manifestCID");
        for (uint256 i = 0; i < n; i++) {
            address v = p.validators[i];
            if (v == address(0) || v == msg.sender) revert BadParams("validator");
            for (uint256 k = 0; k < i; k++) {
                if (p.validators[k] == v) revert BadParams("duplicate validator");
            }
        }
        uint256 escrow = uint256(p.reward) + uint256(p.validatorFee) * n;
        _pullIn(p.token, escrow);

        jobId = ++jobCount;
        Job storage j = _jobs[jobId];
        j.sponsor = msg.sender;
        j.acceptBy = p.acceptBy;
        j.runWindow = p.runWindow;
        j.quorum = p.quorum;
        j.validatorCount = uint8(n);
        if (p.token != address(0) || p.bond != 0) {
            j.token = p.token;
            j.bond = p.bond;
        }
        j.reward = p.reward;
        j.validatorFee = p.validatorFee;
        j.threshold = p.threshold;
        j.attestWindow = p.attestWindow;
        j.commitment = keccak256(abi.encode(p.validators));
        _emitPosted(jobId, p);
    }

    function _emitPosted(uint256 jobId, JobParams calldata p) private {
        emit JobPosted(
            jobId,
            msg.sender,
            p.token,
            p.reward,
            p.validatorFee,
            p.bond,
            p.threshold,
            p.quorum,
            p.validators,
            p.acceptBy,
            p.runWindow,
            p.attestWindow,
            p.manifestCID,
            p.manifestHash
        );
    }

    /// Cancels an Open job; only its sponsor may, and everything escrowed is credited back.
    function cancelJob(uint256 jobId) external {
        Job storage j = _jobs[jobId];
        State s = _stateOf(j);
        if (s != State.Open) revert BadState(s);
        if (msg.sender != j.sponsor) revert NotSponsor();
        j.state = State.Cancelled;
        _credit(j.token, j.sponsor, uint256(j.reward) + uint256(j.validatorFee) * j.validatorCount);
        emit JobCancelled(jobId);
    }

    // ---- provider side ----

    /// Accepts an Open job: the caller, a registered provider, becomes the only one allowed
    /// to submit, and locks the bond (msg.value for ETH jobs, transferFrom for tokens).
    /// validators is the job's list as posted: a provider that is one of them could judge
    /// its own result, so it may not accept.
    function acceptJob(uint256 jobId, address[] calldata validators) external payable nonReentrant {
        Job storage j = _jobs[jobId];
        State s = _stateOf(j);
        if (s != State.Open) revert BadState(s);
        if (block.timestamp > j.acceptBy) revert DeadlinePassed();
        if (providers[msg.sender].registeredAt == 0) revert NotRegistered();
        if (msg.sender == j.sponsor) revert BadParams("sponsor cannot accept");
        if (keccak256(abi.encode(validators)) != j.commitment) revert WrongCommitment();
        for (uint256 i = 0; i < validators.length; i++) {
            if (validators[i] == msg.sender) revert BadParams("validator cannot accept");
        }
        _pullIn(j.token, j.bond);
        uint40 submitBy = uint40(block.timestamp) + j.runWindow;
        j.state = State.Accepted;
        j.provider = msg.sender;
        j.deadline = submitBy;
        j.activeQuorum = j.quorum;
        emit JobAccepted(jobId, msg.sender, submitBy);
    }

    /// Submits the trained checkpoint (its CID and content hash); starts the attest window.
    function submitResult(uint256 jobId, string calldata checkpointCID, bytes32 resultHash) external {
        Job storage j = _jobs[jobId];
        if (j.state != State.Accepted) revert BadState(_stateOf(j));
        if (msg.sender != j.provider) revert NotProvider();
        if (block.timestamp > j.deadline) revert DeadlinePassed();
        if (bytes(checkpointCID).length == 0 || bytes(checkpointCID).length > 128 || resultHash == bytes32(0)) {
            revert BadParams("result");
        }
        uint40 attestBy = uint40(block.timestamp) + j.attestWindow;
        j.state = State.Submitted;
        j.deadline = attestBy;
        j.commitment = keccak256(abi.encode(j.commitment, resultHash));
        emit ResultSubmitted(jobId, msg.sender, checkpointCID, resultHash, attestBy);
    }

    // ---- validators ----

    /// Records the caller's score for the submitted result. validators is the job's
    /// validator list as posted and resultHash the hash submitted (the chain keeps only a
    /// hash of both).
    function attest(uint256 jobId, address[] calldata validators, bytes32 resultHash, uint32 score) external {
        _attest(jobId, validators, resultHash, msg.sender, score);
    }

    /// Records a validator's score signed off-chain (EIP-712, bound to this contract, this
    /// chain, the job and its result hash), submitted by anyone.
    function attestWithSig(
        uint256 jobId,
        address[] calldata validators,
        bytes32 resultHash,
        uint32 score,
        bytes calldata signature
    ) external {
        address signer = ECDSA.recover(attestationDigest(jobId, resultHash, score), signature);
        _attest(jobId, validators, resultHash, signer, score);
    }

    /// The EIP-712 digest a validator signs for attestWithSig.
    function attestationDigest(uint256 jobId, bytes32 resultHash, uint32 score) public view returns (bytes32) {
        return _hashTypedDataV4(keccak256(abi.encode(ATTESTATION_TYPEHASH, jobId, resultHash, score)));
    }

    function _attest(
        uint256 jobId,
        address[] calldata validators,
        bytes32 resultHash,
        address validator,
        uint32 score
    ) private {
        Job storage j = _jobs[jobId];
        if (j.state != State.Submitted) revert BadState(_stateOf(j));
        if (block.timestamp > j.deadline) revert DeadlinePassed();
        if (keccak256(abi.encode(keccak256(abi.encode(validators)), resultHash)) != j.commitment) {
            revert WrongCommitment();
        }
        uint256 i = 0;
        uint256 n = validators.length;
        while (i < n && validators[i] != validator) i++;
        if (i == n) revert NotValidator();
        uint16 bit = uint16(1 << i);
        if (j.attested & bit != 0) revert AlreadyAttested();
        j.attested |= bit;
        bool pass = score >= j.threshold;
        uint8 passes = j.passes;
        uint8 fails = j.fails;
        if (pass) passes++;
        else fails++;
        j.passes = passes;
        j.fails = fails;
        address token = j.token;
        _credit(token, validator, j.validatorFee);
        emit Attested(jobId, validator, score, pass);

        uint256 unearnedFees = uint256(j.validatorFee) * (n - passes - fails);
        uint8 quorum = j.activeQuorum;
        if (passes >= quorum) {
            j.state = State.Completed;
            _credit(token, j.provider, uint256(j.reward) + j.bond);
            if (unearnedFees != 0) _credit(token, j.sponsor, unearnedFees);
            emit JobCompleted(jobId, j.provider);
        } else if (fails > n - quorum) {
            j.state = State.Rejected;
            _credit(token, j.sponsor, uint256(j.reward) + j.bond + unearnedFees);
            emit JobRejected(jobId, j.provider);
        }
    }

    // ---- timeouts ----

    /// Ends a job whose current deadline has passed; anyone may call it. See the contract
    /// comment for who is credited what.
    function expire(uint256 jobId) external {
        Job storage j = _jobs[jobId];
        State s = _stateOf(j);
        uint256 fees = uint256(j.validatorFee) * j.validatorCount;
        if (s == State.Open) {
            if (block.timestamp <= j.acceptBy) revert DeadlineNotPassed();
            _credit(j.token, j.sponsor, uint256(j.reward) + fees);
        } else if (s == State.Accepted) {
            if (block.timestamp <= j.deadline) revert DeadlineNotPassed();
            _credit(j.token, j.sponsor, uint256(j.reward) + fees + j.bond);
        } else if (s == State.Submitted) {
            if (block.timestamp <= j.deadline) revert DeadlineNotPassed();
            uint256 unearned = uint256(j.validatorFee) * (j.validatorCount - j.passes - j.fails);
            _credit(j.token, j.sponsor, uint256(j.reward) + unearned);
            _credit(j.token, j.provider, j.bond);
        } else {
            revert BadState(s);
        }
        j.state = State.Expired;
        emit JobExpired(jobId, s);
    }

    // ---- payments ----

    /// Pays out the caller's whole credit in token (address(0) = ETH).
    function withdraw(address token) external nonReentrant {
        uint256 amount = credit[token][msg.sender];
        if (amount == 0) revert NothingToWithdraw();
        credit[token][msg.sender] = 0;
        if (token == address(0)) {
            (bool ok,) = payable(msg.sender).call{value: amount}("");
            if (!ok) revert TransferFailed();
        } else {
            IERC20(token).safeTransfer(msg.sender, amount);
        }
        emit Withdrawn(msg.sender, token, amount);
    }

    // ---- views ----

    /// Returns a job's stored state.
    function getJob(uint256 jobId) external view returns (Job memory job) {
        job = _jobs[jobId];
        job.state = _stateOf(_jobs[jobId]);
    }

    function _stateOf(Job storage j) private view returns (State s) {
        s = j.state;
        if (s == State.None && j.sponsor != address(0)) s = State.Open;
    }

    /// The EIP-712 domain separator (binds signatures to this contract and chain).
    function domainSeparator() external view returns (bytes32) {
        return _domainSeparatorV4();
    }

    // ---- internals ----

    function _pullIn(address token, uint256 amount) private {
        if (token == address(0)) {
            if (msg.value != amount) revert WrongValue();
            return;
        }
        if (msg.value != 0) revert WrongValue();
        if (amount == 0) return;
        IERC20 t = IERC20(token);
        uint256 before = t.balanceOf(address(this));
        t.safeTransferFrom(msg.sender, address(this), amount);
        uint256 received = t.balanceOf(address(this)) - before;
        if (received != amount) revert TokenAmountMismatch(amount, received);
    }

    function _credit(address token, address account, uint256 amount) private {
        if (amount != 0) credit[token][account] += amount;
    }
}
