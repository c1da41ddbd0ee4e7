// Package market is the chain side of gpunode: the operator's keys (go-ethereum's
// encrypted keystore), a transaction sender with nonce management, EIP-1559 fees, fee
// bumping and confirmations, a JobMarket event watcher that resumes where it stopped, and
// an RPC client that retries with backoff so that an unreachable chain never stops the node.
package market
