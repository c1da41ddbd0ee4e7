// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.30;

// Test-only contracts: tokens with quirks and an attacker. Never deployed outside tests
// and the dev chain.

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";

/// A plain mintable ERC-20.
contract MockToken is ERC20 {
    constructor() ERC20("Mock", "MOCK") {}

    function mint(address to, uint256 amount) external {
        _mint(to, amount);
    }
}

/// A token that takes 1% of every transfer.
contract FeeToken is ERC20 {
    constructor() ERC20("Fee", "FEE") {}

    function mint(address to, uint256 amount) external {
        _mint(to, amount);
    }

    function _update(address from, address to, uint256 value) internal override {
        if (from != address(0) && to != address(0)) {
            uint256 fee = value / 100;
            super._update(from, address(0xdead), fee);
            value -= fee;
        }
        super._update(from, to, value);
    }
}

/// A token whose transfer and transferFrom return false instead of reverting, without
/// moving anything.
contract FalseToken is ERC20 {
    constructor() ERC20("False", "FALSE") {}

    function mint(address to, uint256 amount) external {
        _mint(to, amount);
    }

    function transfer(address, uint256) public pure override returns (bool) {
        return false;
    }

    function transferFrom(address, address, uint256) public pure override returns (bool) {
        return false;
    }
}

interface IMarket {
    function cancelJob(uint256 jobId) external;
    function withdraw(address token) external;
}

/// Posts and cancels a job to earn a credit, then withdraws and tries to withdraw again
/// from its receive hook. postCall is the packed postJob call of the market under test
/// (JobMarket or JobMarketV2: both have the same cancelJob and withdraw).
contract ReentrantAttacker {
    IMarket public immutable market;
    uint256 public reentries;
    uint256 public reentrySuccesses;
    uint256 public received;

    constructor(address m) {
        market = IMarket(m);
    }

    function postAndCancel(bytes calldata postCall) external payable {
        (bool ok, bytes memory ret) = address(market).call{value: msg.value}(postCall);
        if (!ok) {
            assembly {
                revert(add(ret, 32), mload(ret))
            }
        }
        market.cancelJob(abi.decode(ret, (uint256)));
    }

    function attack() external {
        market.withdraw(address(0));
    }

    receive() external payable {
        received += msg.value;
        if (reentries < 3) {
            reentries++;
            try market.withdraw(address(0)) {
                reentrySuccesses++;
            } catch {}
        }
    }
}
