// SPDX-License-Identifier: MIT
pragma solidity ^0.8.30;

import {MerkleProof} from "@openzeppelin/contracts/utils/cryptography/MerkleProof.sol";
import {ReentrancyGuardTransient} from "@openzeppelin/contracts/utils/ReentrancyGuardTransient.sol";

/// @title PoolPayouts: a miner pool's pay, split among its members, withdrawn by them.
/// @notice The pool's coordinator books each job's split off chain (GPU-seconds × score,
/// less the pool's fee) and publishes it as an epoch: the Merkle root of the members'
/// amounts, funded with exactly their sum. Each member then claims its own amount with
/// its proof (pull payments: one failing member cannot block the others). Whatever is
/// not claimed within the claim window goes back to the coordinator, so no funds are
/// ever stuck.
/// @dev Leaves are keccak256(bytes.concat(keccak256(abi.encode(address(this), epoch,
/// member, amount)))): bound to this contract and this epoch (no replay elsewhere), and
/// double-hashed so that no inner node passes for a leaf. Pairs hash sorted (OpenZeppelin's
/// MerkleProof).
contract PoolPayouts is ReentrancyGuardTransient {
    struct Epoch {
        bytes32 root;
        uint128 total;
        uint128 claimed;
        uint64 deadline;
        bool swept;
    }

    /// @notice The pool's coordinator: the only account that publishes epochs and sweeps.
    address public immutable coordinator;
    /// @notice How long members have to claim an epoch, in seconds.
    uint64 public immutable claimWindow;

    Epoch[] private epochs;
    mapping(uint256 epoch => mapping(address member => bool)) public claimed;

    event EpochPublished(uint256 indexed epoch, bytes32 root, uint256 total, uint64 deadline);
    event Claimed(uint256 indexed epoch, address indexed member, uint256 amount);
    event Swept(uint256 indexed epoch, uint256 amount);

    error NotCoordinator();
    error BadEpoch();
    error BadValue();
    error AlreadyClaimed();
    error BadProof();
    error OverClaim();
    error ClaimWindowOver();
    error ClaimWindowOpen();
    error AlreadySwept();
    error TransferFailed();

    constructor(address coordinator_, uint64 claimWindow_) {
        if (coordinator_ == address(0) || claimWindow_ == 0) revert BadValue();
        coordinator = coordinator_;
        claimWindow = claimWindow_;
    }

    /// @notice Publishes an epoch of the pool's split: root over the members' leaves,
    /// funded with msg.value, which must equal total.
    function publish(bytes32 root, uint256 total) external payable returns (uint256 epoch) {
        if (msg.sender != coordinator) revert NotCoordinator();
        if (root == bytes32(0) || total == 0 || msg.value != total || total > type(uint128).max) revert BadValue();
        uint64 deadline = uint64(block.timestamp) + claimWindow;
        epochs.push(Epoch({root: root, total: uint128(total), claimed: 0, deadline: deadline, swept: false}));
        epoch = epochs.length - 1;
        emit EpochPublished(epoch, root, total, deadline);
    }

    /// @notice Pays member its amount of an epoch. Anyone may send it; the money goes to
    /// the member, once.
    function claim(uint256 epoch, address member, uint256 amount, bytes32[] calldata proof) external nonReentrant {
        if (epoch >= epochs.length) revert BadEpoch();
        Epoch storage e = epochs[epoch];
        if (e.swept || block.timestamp > e.deadline) revert ClaimWindowOver();
        if (claimed[epoch][member]) revert AlreadyClaimed();
        bytes32 leaf = keccak256(bytes.concat(keccak256(abi.encode(address(this), epoch, member, amount))));
        if (!MerkleProof.verifyCalldata(proof, e.root, leaf)) revert BadProof();
        if (uint256(e.claimed) + amount > e.total) revert OverClaim();
        claimed[epoch][member] = true;
        e.claimed += uint128(amount);
        (bool ok,) = member.call{value: amount}("");
        if (!ok) revert TransferFailed();
        emit Claimed(epoch, member, amount);
    }

    /// @notice Returns what members did not claim of an epoch to the coordinator, once
    /// its claim window is over.
    function sweep(uint256 epoch) external nonReentrant {
        if (msg.sender != coordinator) revert NotCoordinator();
        if (epoch >= epochs.length) revert BadEpoch();
        Epoch storage e = epochs[epoch];
        if (block.timestamp <= e.deadline) revert ClaimWindowOpen();
        if (e.swept) revert AlreadySwept();
        e.swept = true;
        uint256 rest = uint256(e.total) - e.claimed;
        if (rest > 0) {
            (bool ok,) = coordinator.call{value: rest}("");
            if (!ok) revert TransferFailed();
        }
        emit Swept(epoch, rest);
    }

    /// @notice The number of epochs published.
    function epochCount() external view returns (uint256) {
        return epochs.length;
    }

    /// @notice One epoch.
    function getEpoch(uint256 epoch) external view returns (Epoch memory) {
        if (epoch >= epochs.length) revert BadEpoch();
        return epochs[epoch];
    }
}
