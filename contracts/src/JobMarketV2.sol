// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.30;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {ReentrancyGuardTransient} from "@openzeppelin/contracts/utils/ReentrancyGuardTransient.sol";

/// @title JobMarketV2: escrowed ML training jobs judged by staked, randomly drawn validators
/// through commit-reveal, paid against the release of the checkpoint's key.
/// @notice Lifecycle of a job:
///   Open --acceptJob (draws k validators)--> Accepted --submitResult--> Submitted
///   Submitted --commit* then reveal*--> decided: Passed | Rejected | NoQuorum
///   Passed --releaseKey (K with the committed hash)--> Completed
///   Open --cancelJob--> Cancelled
///   Accepted --giveBack--> Returned
///   Open | Accepted | Passed --expire (after its deadline)--> Expired
///   Submitted --finalize (after the reveal deadline, or once every commit is revealed)--> decided
/// Funds never leave by push: every payout is a credit that its owner withdraws.
///
/// Rules (see the README's design note for why each one exists):
///   - Validators stake ETH in a registry (at least minStake) and are drawn at acceptJob with
///     block.prevrandao of the accept block: the sponsor sends no transaction at or after the
///     draw. The sponsor's allowlist is used only when the provider asks for it.
///   - A drawn validator commits keccak256(abi.encode(score, salt, validator, jobId)) by the
///     commit deadline and reveals (score, salt) after it (or once all k committed) and before
///     the reveal deadline. Only a matching reveal earns the fee. A drawn validator that does
///     not reveal loses slashAmount of its stake (or what is left), credited to the provider.
///   - Decision: at least quorum reveals, and more than half of the revealed scores pass
///     (the median passes for an odd count; an even split rejects). Fewer reveals: NoQuorum
///     (the sponsor is refunded, the provider gets its bond and the slashed stakes).
///   - The checkpoint is sealed: submitResult carries the ciphertext's CID and hash and
///     keyHash = keccak256(K). A Passed job pays the provider only in releaseKey, the
///     call that publishes K: payment and key release are one transaction. Anyone who knows
///     K (the provider or any drawn validator) may call it; if nobody does before the key
///     deadline the sponsor is refunded and the bond slashed to it.
///   - giveBack: within the first GIVE_BACK_PERCENT of the run window and with a log hash the
///     bond is returned; later (or without a log hash) it is slashed to the sponsor.
///   - Metric direction per job: lowerIsBetter makes a score pass when <= threshold.
/// Only exact-amount tokens are supported: a token that takes a fee on transfer or does
/// not return true is refused. Stakes and slashes are in ETH whatever the job's token.
contract JobMarketV2 is ReentrancyGuardTransient {
    using SafeERC20 for IERC20;

    enum State {
        None,
        Open,
        Accepted,
        Submitted,
        Passed,
        Completed,
        Rejected,
        NoQuorum,
        Returned,
        Cancelled,
        Expired
    }

    /// Storage is packed so that a whole lifecycle stays cheap: strings (CIDs, peer IDs) and
    /// lists (the allowlist, the drawn validators) live in events; the chain keeps hashes.
    struct Job {
        // slot 0 (written at post)
        address sponsor;
        uint40 acceptBy; // last second a provider may accept
        uint32 runWindow; // seconds from accept to the submit deadline
        uint8 quorum; // reveals needed for a decision
        uint8 validatorCount; // k, validators drawn at accept
        bool lowerIsBetter; // metric direction
        // slot 1 (written at post)
        address token; // address(0) = ETH
        uint96 bond; // bond the provider must lock at accept
        // slot 2 (written at accept, then by every step)
        address provider;
        uint40 deadline; // Accepted: submit-by; Submitted: commit-by; Passed: key-by
        State state; // None with a sponsor set is Open
        uint8 passes;
        uint8 fails;
        uint16 committed; // bit i: drawn validator i committed
        uint16 revealed; // bit i: drawn validator i revealed
        // slot 3 (written at post)
        uint96 reward;
        uint80 validatorFee;
        uint32 threshold;
        uint24 commitWindow; // seconds from submit to the commit deadline
        uint24 revealWindow; // seconds from the commit deadline to the reveal deadline; also the key window
        // slot 4: keccak256(abi.encode(allowlist)) while Open (zero: no allowlist), then
        // keccak256(abi.encode(drawn validators)) from accept on.
        bytes32 validators;
        // slot 5: keccak256(K) of the sealed checkpoint's key, from submit on.
        bytes32 keyHash;
    }

    /// Parameters of postJob.
    struct JobParams {
        address token;
        uint96 reward;
        uint80 validatorFee;
        uint96 bond;
        uint32 threshold;
        bool lowerIsBetter;
        uint8 validatorCount;
        uint8 quorum;
        address[] allowlist;
        uint40 acceptBy;
        uint32 runWindow;
        uint24 commitWindow;
        uint24 revealWindow;
        string manifestCID;
        bytes32 manifestHash;
    }

    struct Provider {
        bytes32 peerIdHash;
        bytes32 reportHash;
        uint40 registeredAt;
    }

    struct Validator {
        uint96 stake;
        uint40 unbondAt; // 0 while bonded; else when withdrawStake may run
        uint32 poolIndex; // index + 1 in pool; 0 = not drawable
        uint88 earned; // ETH fees earned, paid by withdraw(address(0)) with the ETH credit
    }

    uint256 public constant MAX_VALIDATORS = 16;
    uint256 public constant MAX_ALLOWLIST = 64;
    uint256 public constant GIVE_BACK_PERCENT = 10;

    /// Least stake to be drawable.
    uint96 public immutable minStake;
    /// Taken from a drawn validator that does not reveal (or all its stake if less).
    uint96 public immutable slashAmount;
    /// Seconds between unstake and withdrawStake. A job's run, commit and reveal windows
    /// together last at most half of it, so a validator drawn for a job cannot take its stake
    /// out before half an unbonding period after that job's reveal deadline: time enough for
    /// anyone (the provider is paid the slash) to call finalize.
    uint32 public immutable unbondingPeriod;

    uint256 public jobCount;
    mapping(uint256 jobId => Job) internal _jobs;
    mapping(uint256 jobId => mapping(address validator => bytes32)) public commitments;
    mapping(address provider => Provider) internal _providers;
    mapping(address validator => Validator) internal _validators;
    /// Drawable validators (staked at least minStake, not unbonding).
    address[] public pool;
    /// Sealed checkpoints already submitted (by their hash): one ciphertext serves one job.
    mapping(bytes32 resultHash => bool) public resultUsed;
    /// Pull-payment balances per token (address(0) = ETH; validators' ETH fees are kept in
    /// their record instead, see credit()).
    mapping(address token => mapping(address account => uint256)) internal _credits;

    event ProviderRegistered(
        address indexed provider, string peerId, bytes32 peerIdHash, string reportCID, bytes32 reportHash
    );
    event ValidatorRegistered(address indexed validator, string peerId, uint256 stake);
    event Staked(address indexed validator, uint256 amount, uint256 stake);
    event Unstaking(address indexed validator, uint40 unbondAt);
    event StakeWithdrawn(address indexed validator, uint256 amount);
    event Slashed(uint256 indexed jobId, address indexed validator, uint256 amount);
    event JobPosted(uint256 indexed jobId, address indexed sponsor, address indexed token, JobParams params);
    event JobCancelled(uint256 indexed jobId);
    event JobAccepted(
        uint256 indexed jobId, address indexed provider, uint40 submitBy, address[] validators, bool fromAllowlist
    );
    event ResultSubmitted(
        uint256 indexed jobId,
        address indexed provider,
        string checkpointCID,
        bytes32 resultHash,
        bytes32 keyHash,
        uint40 commitBy,
        uint40 revealBy
    );
    event Committed(uint256 indexed jobId, address indexed validator, bytes32 commitment);
    event Revealed(uint256 indexed jobId, address indexed validator, uint32 score, bool pass);
    event JobDecided(uint256 indexed jobId, State outcome, uint8 passes, uint8 fails, uint40 keyBy);
    event KeyReleased(uint256 indexed jobId, bytes32 key, address by);
    event JobCompleted(uint256 indexed jobId, address indexed provider);
    event JobReturned(uint256 indexed jobId, address indexed provider, bytes32 logHash, bool bondReturned);
    event JobExpired(uint256 indexed jobId, State from);
    event Withdrawn(address indexed account, address indexed token, uint256 amount);

    error BadParams(string reason);
    error BadState(State state);
    error NotRegistered();
    error NotProvider();
    error NotSponsor();
    error NotValidator();
    error NotEnoughValidators();
    error AlreadyCommitted();
    error NotCommitted();
    error AlreadyRevealed();
    error WrongReveal();
    error RevealTooEarly();
    error WrongKey();
    error ResultReused();
    error StakeLocked(uint40 until);
    error DeadlinePassed();
    error DeadlineNotPassed();
    error WrongValue();
    error WrongCommitment();
    error TokenAmountMismatch(uint256 expected, uint256 received);
    error NothingToWithdraw();
    error TransferFailed();

    constructor(uint96 minStake_, uint96 slashAmount_, uint32 unbondingPeriod_) {
        if (minStake_ == 0 || slashAmount_ == 0 || slashAmount_ > minStake_ || unbondingPeriod_ == 0) {
            revert BadParams("registry");
        }
        minStake = minStake_;
        slashAmount = slashAmount_;
        unbondingPeriod = unbondingPeriod_;
    }

    // ---- providers ----

    /// Registers (or updates) the caller as a provider with its libp2p peer ID and the CID of
    /// its signed benchmark report.
    function registerProvider(string calldata peerId, string calldata reportCID, bytes32 reportHash) external {
        if (bytes(peerId).length == 0 || bytes(peerId).length > 128 || bytes(reportCID).length > 128) {
            revert BadParams("peer id or report cid length");
        }
        bytes32 peerIdHash = keccak256(bytes(peerId));
        _providers[msg.sender] =
            Provider({peerIdHash: peerIdHash, reportHash: reportHash, registeredAt: uint40(block.timestamp)});
        emit ProviderRegistered(msg.sender, peerId, peerIdHash, reportCID, reportHash);
    }

    // ---- validator registry ----

    /// Registers (or updates) the caller as a validator with the libp2p peer ID that
    /// providers deliver checkpoint keys to, adding msg.value to its stake. A validator
    /// that was unbonding is bonded again. The stake must reach minStake.
    function registerValidator(string calldata peerId) external payable {
        if (bytes(peerId).length == 0 || bytes(peerId).length > 128) revert BadParams("peer id length");
        uint256 total = _addStake();
        emit ValidatorRegistered(msg.sender, peerId, total);
    }

    /// Adds msg.value to the caller's stake (see registerValidator).
    function stake() external payable {
        if (msg.value == 0) revert WrongValue();
        uint256 total = _addStake();
        emit Staked(msg.sender, msg.value, total);
    }

    function _addStake() private returns (uint256 total) {
        Validator storage v = _validators[msg.sender];
        total = uint256(v.stake) + msg.value;
        if (total > type(uint96).max) revert WrongValue();
        if (total < minStake) revert BadParams("stake below minStake");
        v.stake = uint96(total);
        v.unbondAt = 0;
        if (v.poolIndex == 0) {
            pool.push(msg.sender);
            v.poolIndex = uint32(pool.length);
        }
    }

    /// Starts unbonding: the caller is no longer drawn; withdrawStake pays out once
    /// unbondingPeriod has passed and every job it was drawn for is past its lock.
    function unstake() external {
        Validator storage v = _validators[msg.sender];
        if (v.stake == 0 || v.unbondAt != 0) revert BadState(State.None);
        if (v.poolIndex != 0) _leavePool(v);
        uint40 at = uint40(block.timestamp) + unbondingPeriod;
        v.unbondAt = at;
        emit Unstaking(msg.sender, at);
    }

    /// Moves an unbonded stake to the caller's ETH credit (then withdraw(address(0))).
    function withdrawStake() external {
        Validator storage v = _validators[msg.sender];
        uint40 unbondAt = v.unbondAt;
        if (unbondAt == 0) revert BadState(State.None);
        if (block.timestamp < unbondAt) revert StakeLocked(unbondAt);
        uint256 amount = v.stake;
        v.stake = 0;
        v.unbondAt = 0;
        if (amount == 0) revert NothingToWithdraw();
        _credit(address(0), msg.sender, amount);
        emit StakeWithdrawn(msg.sender, amount);
    }

    /// A provider's registration (registeredAt zero: not registered).
    function providerOf(address provider) external view returns (Provider memory) {
        return _providers[provider];
    }

    /// A validator's stake record.
    function validatorOf(address validator) external view returns (Validator memory) {
        return _validators[validator];
    }

    /// How many validators can be drawn.
    function poolSize() external view returns (uint256) {
        return pool.length;
    }

    function _leavePool(Validator storage v) private {
        uint256 i = v.poolIndex - 1;
        address last = pool[pool.length - 1];
        pool[i] = last;
        _validators[last].poolIndex = uint32(i + 1);
        pool.pop();
        v.poolIndex = 0;
    }

    // ---- sponsor side ----

    /// Posts a job, escrowing reward + validatorFee * validatorCount in ETH (msg.value) or
    /// in the token (pulled with transferFrom; approve it first). allowlist, if not empty,
    /// is the sponsor's list of validators a provider may choose to be judged by.
    function postJob(JobParams calldata p) external payable nonReentrant returns (uint256 jobId) {
        uint256 k = p.validatorCount;
        if (k == 0 || k > MAX_VALIDATORS) revert BadParams("validatorCount");
        if (p.quorum == 0 || p.quorum > k) revert BadParams("quorum");
        if (p.reward == 0) revert BadParams("reward");
        if (p.acceptBy <= block.timestamp) revert BadParams("acceptBy");
        if (p.runWindow == 0 || p.commitWindow == 0 || p.revealWindow == 0) revert BadParams("windows");
        if (uint256(p.runWindow) + p.commitWindow + 2 * uint256(p.revealWindow) > unbondingPeriod / 2) {
            revert BadParams("windows longer than half the unbonding period");
        }
        if (bytes(p.manifestCID).length == 0 || bytes(p.manifestCID).length > 128) revert BadParams("manifestCID");
        uint256 m = p.allowlist.length;
        if (m > MAX_ALLOWLIST || (m != 0 && m < k)) revert BadParams("allowlist");
        _pullIn(p.token, uint256(p.reward) + uint256(p.validatorFee) * k);

        jobId = ++jobCount;
        Job storage j = _jobs[jobId];
        j.sponsor = msg.sender;
        j.acceptBy = p.acceptBy;
        j.runWindow = p.runWindow;
        j.quorum = p.quorum;
        j.validatorCount = uint8(k);
        j.lowerIsBetter = p.lowerIsBetter;
        if (p.token != address(0) || p.bond != 0) {
            j.token = p.token;
            j.bond = p.bond;
        }
        j.reward = p.reward;
        j.validatorFee = p.validatorFee;
        j.threshold = p.threshold;
        j.commitWindow = p.commitWindow;
        j.revealWindow = p.revealWindow;
        if (m != 0) j.validators = keccak256(abi.encode(p.allowlist));
        emit JobPosted(jobId, msg.sender, p.token, p);
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
    /// to submit, locks the bond (msg.value for ETH jobs, transferFrom for tokens), and the
    /// job's validators are drawn: from the whole registry, or, when useAllowlist is set,
    /// from the staked validators of the sponsor's allowlist (passed as posted).
    function acceptJob(uint256 jobId, bool useAllowlist, address[] calldata allowlist) external payable nonReentrant {
        Job storage j = _jobs[jobId];
        State s = _stateOf(j);
        if (s != State.Open) revert BadState(s);
        if (block.timestamp > j.acceptBy) revert DeadlinePassed();
        if (_providers[msg.sender].registeredAt == 0) revert NotRegistered();
        address sponsor = j.sponsor;
        if (msg.sender == sponsor) revert BadParams("sponsor cannot accept");
        if (useAllowlist) {
            bytes32 h = j.validators;
            if (h == bytes32(0) || keccak256(abi.encode(allowlist)) != h) revert WrongCommitment();
        } else if (allowlist.length != 0) {
            revert BadParams("allowlist without useAllowlist");
        }
        _pullIn(j.token, j.bond);
        uint40 submitBy = uint40(block.timestamp) + j.runWindow;
        address[] memory drawn = _draw(jobId, j.validatorCount, sponsor, useAllowlist, allowlist);
        j.provider = msg.sender;
        j.deadline = submitBy;
        j.state = State.Accepted;
        j.validators = keccak256(abi.encode(drawn));
        emit JobAccepted(jobId, msg.sender, submitBy, drawn, useAllowlist);
    }

    /// Draws k distinct drawable validators, neither the sponsor nor the caller, seeded by
    /// this block's prevrandao and the job id. Each pick hashes to a start index and probes
    /// forward past candidates that are not eligible (a slight bias toward the successors
    /// of ineligible entries; see the README for who can grind the seed).
    function _draw(
        uint256 jobId,
        uint256 k,
        address sponsor,
        bool fromList,
        address[] calldata list
    ) private view returns (address[] memory drawn) {
        uint256 n = fromList ? list.length : pool.length;
        if (n < k) revert NotEnoughValidators();
        drawn = new address[](k);
        bytes32 seed = keccak256(abi.encode(block.prevrandao, jobId));
        for (uint256 d = 0; d < k; d++) {
            uint256 idx = uint256(keccak256(abi.encode(seed, d))) % n;
            for (uint256 tries = 0;; tries++) {
                if (tries == n) revert NotEnoughValidators();
                address c = fromList ? list[idx] : pool[idx];
                if (
                    c != sponsor && c != msg.sender && !_contains(drawn, d, c)
                        && (!fromList || _validators[c].poolIndex != 0)
                ) {
                    drawn[d] = c;
                    break;
                }
                idx = idx + 1 == n ? 0 : idx + 1;
            }
        }
    }

    function _contains(address[] memory xs, uint256 n, address x) private pure returns (bool) {
        for (uint256 i = 0; i < n; i++) {
            if (xs[i] == x) return true;
        }
        return false;
    }

    /// Submits the sealed checkpoint: the CID and hash of its ciphertext and
    /// keyHash = keccak256(K) of the 32-byte key that decrypts it. Starts the commit window.
    /// The ciphertext must be bound to this job (AEAD associated data naming the chain id,
    /// this contract and the job id): validators check that off chain, and resultUsed
    /// refuses a ciphertext hash that another job already submitted.
    function submitResult(uint256 jobId, string calldata checkpointCID, bytes32 resultHash, bytes32 keyHash)
        external
    {
        Job storage j = _jobs[jobId];
        if (j.state != State.Accepted) revert BadState(_stateOf(j));
        if (msg.sender != j.provider) revert NotProvider();
        if (block.timestamp > j.deadline) revert DeadlinePassed();
        if (
            bytes(checkpointCID).length == 0 || bytes(checkpointCID).length > 128 || resultHash == bytes32(0)
                || keyHash == bytes32(0)
        ) {
            revert BadParams("result");
        }
        if (resultUsed[resultHash]) revert ResultReused();
        resultUsed[resultHash] = true;
        uint40 commitBy = uint40(block.timestamp) + j.commitWindow;
        j.state = State.Submitted;
        j.deadline = commitBy;
        j.keyHash = keyHash;
        emit ResultSubmitted(jobId, msg.sender, checkpointCID, resultHash, keyHash, commitBy, commitBy + j.revealWindow);
    }

    /// Hands an Accepted job back (the trainer failed). Within the first GIVE_BACK_PERCENT of
    /// the run window and with the hash of the failure's log the bond is returned; otherwise
    /// it is slashed to the sponsor. The sponsor gets reward and fees back either way.
    function giveBack(uint256 jobId, bytes32 logHash) external {
        Job storage j = _jobs[jobId];
        if (j.state != State.Accepted) revert BadState(_stateOf(j));
        if (msg.sender != j.provider) revert NotProvider();
        uint40 submitBy = j.deadline;
        if (block.timestamp > submitBy) revert DeadlinePassed();
        uint256 acceptedAt = submitBy - j.runWindow;
        bool early = logHash != bytes32(0)
            && block.timestamp <= acceptedAt + (uint256(j.runWindow) * GIVE_BACK_PERCENT) / 100;
        j.state = State.Returned;
        uint256 refund = uint256(j.reward) + uint256(j.validatorFee) * j.validatorCount;
        if (early) {
            _credit(j.token, msg.sender, j.bond);
        } else {
            refund += j.bond;
        }
        _credit(j.token, j.sponsor, refund);
        emit JobReturned(jobId, msg.sender, logHash, early);
    }

    // ---- validators ----

    /// Commits the caller's score: commitment = keccak256(abi.encode(uint32 score, bytes32 salt,
    /// address validator, uint256 jobId)). drawn is the job's drawn list (JobAccepted).
    /// One commitment per validator per job; it cannot be changed.
    function commit(uint256 jobId, address[] calldata drawn, bytes32 commitment) external {
        Job storage j = _jobs[jobId];
        if (j.state != State.Submitted) revert BadState(_stateOf(j));
        if (block.timestamp > j.deadline) revert DeadlinePassed();
        uint16 bit = _seat(j, drawn);
        if (j.committed & bit != 0) revert AlreadyCommitted();
        if (commitment == bytes32(0)) revert BadParams("commitment");
        j.committed |= bit;
        commitments[jobId][msg.sender] = commitment;
        emit Committed(jobId, msg.sender, commitment);
    }

    /// Reveals the committed score, after the commit deadline (or once every drawn validator
    /// has committed) and by the reveal deadline. Only a matching reveal earns the fee. The
    /// reveal that completes the set decides the job.
    function reveal(uint256 jobId, address[] calldata drawn, uint32 score, bytes32 salt) external {
        Job storage j = _jobs[jobId];
        if (j.state != State.Submitted) revert BadState(_stateOf(j));
        uint16 bit = _seat(j, drawn); // checks drawn: at most MAX_VALIDATORS entries
        uint16 committed = j.committed;
        uint40 commitBy = j.deadline;
        if (block.timestamp <= commitBy && committed != uint16((1 << drawn.length) - 1)) revert RevealTooEarly();
        if (block.timestamp > commitBy + j.revealWindow) revert DeadlinePassed();
        if (committed & bit == 0) revert NotCommitted();
        if (j.revealed & bit != 0) revert AlreadyRevealed();
        if (keccak256(abi.encode(score, salt, msg.sender, jobId)) != commitments[jobId][msg.sender]) {
            revert WrongReveal();
        }
        delete commitments[jobId][msg.sender];
        uint16 revealed = j.revealed | bit;
        j.revealed = revealed;
        bool pass = j.lowerIsBetter ? score <= j.threshold : score >= j.threshold;
        if (pass) j.passes++;
        else j.fails++;
        address token = j.token;
        if (token == address(0)) _validators[msg.sender].earned += j.validatorFee;
        else _credit(token, msg.sender, j.validatorFee);
        emit Revealed(jobId, msg.sender, score, pass);
        if (revealed == committed) _decide(jobId, j, drawn);
    }

    /// Decides a Submitted job whose reveal deadline has passed, or whose commit deadline has
    /// passed with every commitment revealed; anyone may call it. Drawn validators that did
    /// not reveal are slashed.
    function finalize(uint256 jobId, address[] calldata drawn) external {
        Job storage j = _jobs[jobId];
        if (j.state != State.Submitted) revert BadState(_stateOf(j));
        if (keccak256(abi.encode(drawn)) != j.validators) revert WrongCommitment();
        uint40 commitBy = j.deadline;
        bool revealOver = block.timestamp > commitBy + j.revealWindow;
        if (!revealOver && !(block.timestamp > commitBy && j.revealed == j.committed)) revert DeadlineNotPassed();
        _decide(jobId, j, drawn);
    }

    /// The index bit of the caller in the drawn list, checked against the job.
    function _seat(Job storage j, address[] calldata drawn) private view returns (uint16) {
        if (keccak256(abi.encode(drawn)) != j.validators) revert WrongCommitment();
        uint256 n = drawn.length;
        for (uint256 i = 0; i < n; i++) {
            if (drawn[i] == msg.sender) return uint16(1 << i);
        }
        revert NotValidator();
    }

    function _decide(uint256 jobId, Job storage j, address[] calldata drawn) private {
        uint256 k = drawn.length;
        uint16 revealed = j.revealed;
        uint256 slashed = 0;
        if (revealed != uint16((1 << k) - 1)) {
            for (uint256 i = 0; i < k; i++) {
                if (revealed & (1 << i) == 0) slashed += _slash(jobId, drawn[i]);
            }
        }
        address provider = j.provider;
        if (slashed != 0) _credit(address(0), provider, slashed);
        uint8 passes = j.passes;
        uint8 fails = j.fails;
        uint256 count = uint256(passes) + fails;
        address token = j.token;
        uint256 unearned = uint256(j.validatorFee) * (k - count);
        State outcome;
        uint40 keyBy = 0;
        if (count < j.quorum) {
            outcome = State.NoQuorum;
            _credit(token, j.sponsor, uint256(j.reward) + unearned);
            _credit(token, provider, j.bond);
        } else if (uint256(passes) * 2 > count) {
            outcome = State.Passed;
            if (unearned != 0) _credit(token, j.sponsor, unearned);
            keyBy = uint40(block.timestamp) + j.revealWindow;
            j.deadline = keyBy;
        } else {
            outcome = State.Rejected;
            _credit(token, j.sponsor, uint256(j.reward) + j.bond + unearned);
        }
        j.state = outcome;
        emit JobDecided(jobId, outcome, passes, fails, keyBy);
    }

    function _slash(uint256 jobId, address validator) private returns (uint256 amount) {
        Validator storage v = _validators[validator];
        amount = v.stake;
        if (amount > slashAmount) amount = slashAmount;
        uint96 left = v.stake - uint96(amount);
        v.stake = left;
        if (v.poolIndex != 0 && left < minStake) _leavePool(v);
        emit Slashed(jobId, validator, amount);
    }

    // ---- the key ----

    /// Publishes the checkpoint key of a Passed job and pays the provider reward + bond in the
    /// same transaction. Anyone who knows K may call it (the provider, or a drawn validator
    /// when the provider does not).
    function releaseKey(uint256 jobId, bytes32 key) external {
        Job storage j = _jobs[jobId];
        if (j.state != State.Passed) revert BadState(_stateOf(j));
        if (block.timestamp > j.deadline) revert DeadlinePassed();
        if (keccak256(abi.encode(key)) != j.keyHash) revert WrongKey();
        j.state = State.Completed;
        address provider = j.provider;
        _credit(j.token, provider, uint256(j.reward) + j.bond);
        emit KeyReleased(jobId, key, msg.sender);
        emit JobCompleted(jobId, provider);
    }

    // ---- timeouts ----

    /// Ends an Open, Accepted or Passed job whose deadline has passed; anyone may call it.
    ///   Open: the sponsor gets everything back.
    ///   Accepted (the provider missed the submit deadline): the sponsor gets reward, fees and
    ///   the slashed bond.
    ///   Passed (nobody released the key): the sponsor gets reward and the slashed bond.
    /// A Submitted job ends through finalize.
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
        } else if (s == State.Passed) {
            if (block.timestamp <= j.deadline) revert DeadlineNotPassed();
            _credit(j.token, j.sponsor, uint256(j.reward) + j.bond);
        } else {
            revert BadState(s);
        }
        j.state = State.Expired;
        emit JobExpired(jobId, s);
    }

    // ---- payments ----

    /// Pays out the caller's whole credit in token (address(0) = ETH).
    function withdraw(address token) external nonReentrant {
        uint256 amount = _credits[token][msg.sender];
        if (amount != 0) _credits[token][msg.sender] = 0;
        if (token == address(0)) {
            Validator storage v = _validators[msg.sender];
            uint256 earned = v.earned;
            if (earned != 0) {
                v.earned = 0;
                amount += earned;
            }
        }
        if (amount == 0) revert NothingToWithdraw();
        if (token == address(0)) {
            (bool ok,) = payable(msg.sender).call{value: amount}("");
            if (!ok) revert TransferFailed();
        } else {
            IERC20(token).safeTransfer(msg.sender, amount);
        }
        emit Withdrawn(msg.sender, token, amount);
    }

    // ---- views ----

    /// What withdraw(token) would pay account.
    function credit(address token, address account) external view returns (uint256 amount) {
        amount = _credits[token][account];
        if (token == address(0)) amount += _validators[account].earned;
    }

    /// Returns a job's stored state.
    function getJob(uint256 jobId) external view returns (Job memory job) {
        job = _jobs[jobId];
        job.state = _stateOf(_jobs[jobId]);
    }

    function _stateOf(Job storage j) private view returns (State s) {
        s = j.state;
        if (s == State.None && j.sponsor != address(0)) s = State.Open;
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
        if (amount != 0) _credits[token][account] += amount;
    }
}
