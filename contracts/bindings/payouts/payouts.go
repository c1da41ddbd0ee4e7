// Code generated via abigen V2 - DO NOT EDIT.
// This file is a generated binding and any manual changes will be lost.

package payouts

import (
	"bytes"
	"errors"
	"math/big"

	"github.com/ethereum/go-ethereum/accounts/abi"
	"github.com/ethereum/go-ethereum/accounts/abi/bind/v2"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"
)

// Reference imports to suppress errors if they are not otherwise used.
var (
	_ = bytes.Equal
	_ = errors.New
	_ = big.NewInt
	_ = common.Big1
	_ = types.BloomLookup
	_ = abi.ConvertType
)

// PoolPayoutsEpoch is an auto generated low-level Go binding around an user-defined struct.
type PoolPayoutsEpoch struct {
	Root     [32]byte
	Total    *big.Int
	Claimed  *big.Int
	Deadline uint64
	Swept    bool
}

// PoolPayoutsMetaData contains all meta data concerning the PoolPayouts contract.
var PoolPayoutsMetaData = bind.MetaData{
	ABI: "[{\"inputs\":[{\"internalType\":\"address\",\"name\":\"coordinator_\",\"type\":\"address\"},{\"internalType\":\"uint64\",\"name\":\"claimWindow_\",\"type\":\"uint64\"}],\"stateMutability\":\"nonpayable\",\"type\":\"constructor\"},{\"inputs\":[],\"name\":\"AlreadyClaimed\",\"type\":\"error\"},{\"inputs\":[],\"name\":\"AlreadySwept\",\"type\":\"error\"},{\"inputs\":[],\"name\":\"BadEpoch\",\"type\":\"error\"},{\"inputs\":[],\"name\":\"BadProof\",\"type\":\"error\"},{\"inputs\":[],\"name\":\"BadValue\",\"type\":\"error\"},{\"inputs\":[],\"name\":\"ClaimWindowOpen\",\"type\":\"error\"},{\"inputs\":[],\"name\":\"ClaimWindowOver\",\"type\":\"error\"},{\"inputs\":[],\"name\":\"NotCoordinator\",\"type\":\"error\"},{\"inputs\":[],\"name\":\"OverClaim\",\"type\":\"error\"},{\"inputs\":[],\"name\":\"ReentrancyGuardReentrantCall\",\"type\":\"error\"},{\"inputs\":[],\"name\":\"TransferFailed\",\"type\":\"error\"},{\"anonymous\":false,\"inputs\":[{\"indexed\":true,\"internalType\":\"uint256\",\"name\":\"epoch\",\"type\":\"uint256\"},{\"indexed\":true,\"internalType\":\"address\",\"name\":\"member\",\"type\":\"address\"},{\"indexed\":false,\"internalType\":\"uint256\",\"name\":\"amount\",\"type\":\"uint256\"}],\"name\":\"Claimed\",\"type\":\"event\"},{\"anonymous\":false,\"inputs\":[{\"indexed\":true,\"internalType\":\"uint256\",\"name\":\"epoch\",\"type\":\"uint256\"},{\"indexed\":false,\"internalType\":\"bytes32\",\"name\":\"root\",\"type\":\"bytes32\"},{\"indexed\":false,\"internalType\":\"uint256\",\"name\":\"total\",\"type\":\"uint256\"},{\"indexed\":false,\"internalType\":\"uint64\",\"name\":\"deadline\",\"type\":\"uint64\"}],\"name\":\"EpochPublished\",\"type\":\"event\"},{\"anonymous\":false,\"inputs\":[{\"indexed\":true,\"internalType\":\"uint256\",\"name\":\"epoch\",\"type\":\"uint256\"},{\"indexed\":false,\"internalType\":\"uint256\",\"name\":\"amount\",\"type\":\"uint256\"}],\"name\":\"Swept\",\"type\":\"event\"},{\"inputs\":[{\"internalType\":\"uint256\",\"name\":\"epoch\",\"type\":\"uint256\"},{\"internalType\":\"address\",\"name\":\"member\",\"type\":\"address\"},{\"internalType\":\"uint256\",\"name\":\"amount\",\"type\":\"uint256\"},{\"internalType\":\"bytes32[]\",\"name\":\"proof\",\"type\":\"bytes32[]\"}],\"name\":\"claim\",\"outputs\":[],\"stateMutability\":\"nonpayable\",\"type\":\"function\"},{\"inputs\":[],\"name\":\"claimWindow\",\"outputs\":[{\"internalType\":\"uint64\",\"name\":\"\",\"type\":\"uint64\"}],\"stateMutability\":\"view\",\"type\":\"function\"},{\"inputs\":[{\"internalType\":\"uint256\",\"name\":\"epoch\",\"type\":\"uint256\"},{\"internalType\":\"address\",\"name\":\"member\",\"type\":\"address\"}],\"name\":\"claimed\",\"outputs\":[{\"internalType\":\"bool\",\"name\":\"\",\"type\":\"bool\"}],\"stateMutability\":\"view\",\"type\":\"function\"},{\"inputs\":[],\"name\":\"coordinator\",\"outputs\":[{\"internalType\":\"address\",\"name\":\"\",\"type\":\"address\"}],\"stateMutability\":\"view\",\"type\":\"function\"},{\"inputs\":[],\"name\":\"epochCount\",\"outputs\":[{\"internalType\":\"uint256\",\"name\":\"\",\"type\":\"uint256\"}],\"stateMutability\":\"view\",\"type\":\"function\"},{\"inputs\":[{\"internalType\":\"uint256\",\"name\":\"epoch\",\"type\":\"uint256\"}],\"name\":\"getEpoch\",\"outputs\":[{\"components\":[{\"internalType\":\"bytes32\",\"name\":\"root\",\"type\":\"bytes32\"},{\"internalType\":\"uint128\",\"name\":\"total\",\"type\":\"uint128\"},{\"internalType\":\"uint128\",\"name\":\"claimed\",\"type\":\"uint128\"},{\"internalType\":\"uint64\",\"name\":\"deadline\",\"type\":\"uint64\"},{\"internalType\":\"bool\",\"name\":\"swept\",\"type\":\"bool\"}],\"internalType\":\"structPoolPayouts.Epoch\",\"name\":\"\",\"type\":\"tuple\"}],\"stateMutability\":\"view\",\"type\":\"function\"},{\"inputs\":[{\"internalType\":\"bytes32\",\"name\":\"root\",\"type\":\"bytes32\"},{\"internalType\":\"uint256\",\"name\":\"total\",\"type\":\"uint256\"}],\"name\":\"publish\",\"outputs\":[{\"internalType\":\"uint256\",\"name\":\"epoch\",\"type\":\"uint256\"}],\"stateMutability\":\"payable\",\"type\":\"function\"},{\"inputs\":[{\"internalType\":\"uint256\",\"name\":\"epoch\",\"type\":\"uint256\"}],\"name\":\"sweep\",\"outputs\":[],\"stateMutability\":\"nonpayable\",\"type\":\"function\"}]",
	ID:  "PoolPayouts",
	Bin: "0x60c0346100c957601f610daf38819003918201601f19168301916001600160401b038311848410176100cd5780849260409485528339810103126100c95780516001600160a01b038116918282036100c95760200151916001600160401b038316908184036100c957159081156100c0575b506100b15760805260a052604051610ccd90816100e282396080518181816101d0015281816105280152610af3015260a051818181609401526102310152f35b630bba69fb60e01b5f5260045ffd5b9050155f610071565b5f80fd5b634e487b7160e01b5f52604160045260245ffdfe6080806040526004361015610012575f80fd5b5f3560e01c9081630a00909714610ac957508063120aa87714610a725780632e7ba6ef146106fa578063829965cc146106de578063aa60e7331461050a578063b19d632b146101bc578063bc0bc6ba146100bc5763c5d37ae114610074575f80fd5b346100b8575f6003193601126100b857602060405167ffffffffffffffff7f0000000000000000000000000000000000000000000000000000000000000000168152f35b5f80fd5b346100b85760206003193601126100b8576004355f60806040516100df81610b9f565b82815282602082015282604082015282606082015201525f548110156101945761010a60a091610b3a565b506040519061011882610b9f565b67ffffffffffffffff8154928381526fffffffffffffffffffffffffffffffff600184015481600260208501968284168852604086019360801c845201549560ff60806060870196888a168852019760401c16151587526040519788525116602087015251166040850152511660608301525115156080820152f35b7f0aa733db000000000000000000000000000000000000000000000000000000005f5260045ffd5b60406003193601126100b8576024356004357f000000000000000000000000000000000000000000000000000000000000000073ffffffffffffffffffffffffffffffffffffffff1633036104e257801580156104da575b80156104d0575b80156104b7575b61048f5767ffffffffffffffff7f00000000000000000000000000000000000000000000000000000000000000001667ffffffffffffffff4216019067ffffffffffffffff8211610409576040519161027a83610b9f565b818352602083016fffffffffffffffffffffffffffffffff8516815260408401905f825267ffffffffffffffff6060860193169485845260808101925f84525f5468010000000000000000811015610462578060016102db92015f55610b3a565b91909161043657915181559151905160801b7fffffffffffffffffffffffffffffffff00000000000000000000000000000000166fffffffffffffffffffffffffffffffff9190911617600182015567ffffffffffffffff906002019251167fffffffffffffffffffffffffffffffffffffffffffffffff00000000000000008354161782555115157fffffffffffffffffffffffffffffffffffffffffffffff00ffffffffffffffff68ff000000000000000083549260401b1691161790555f54917fffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff830192831161040957606083927f92c85369eead3d8555a7298769ddafde22d0f2f5f1ec05b2aa4059520533f00392602096604051928352878301526040820152a2604051908152f35b7f4e487b71000000000000000000000000000000000000000000000000000000005f52601160045260245ffd5b7f4e487b71000000000000000000000000000000000000000000000000000000005f525f60045260245ffd5b7f4e487b71000000000000000000000000000000000000000000000000000000005f52604160045260245ffd5b7f0bba69fb000000000000000000000000000000000000000000000000000000005f5260045ffd5b506fffffffffffffffffffffffffffffffff8211610222565b508134141561021b565b508115610214565b7f9ec853e6000000000000000000000000000000000000000000000000000000005f5260045ffd5b346100b85760206003193601126100b857600435610526610c59565b7f000000000000000000000000000000000000000000000000000000000000000073ffffffffffffffffffffffffffffffffffffffff811633036104e2575f548210156101945761057682610b3a565b50600281019081549167ffffffffffffffff83164211156106b65760ff8360401c1661068e57680100000000000000007fffffffffffffffffffffffffffffffffffffffffffffff00ffffffffffffffff600194161790550154906fffffffffffffffffffffffffffffffff82169160801c80830392808411610409570361064a575b5060207f8ca6abf6b1c0bd37b098133cb9c8a94eb36b3f0f859bbca87c56b032880f5b3591604051908152a25f7f9b779b17422d0df92223018b32b4d1fa46e071723d6817e2486d003becc55f005d005b5f80808481945af161065a610bfc565b501561066657826105f9565b7f90b8ec18000000000000000000000000000000000000000000000000000000005f5260045ffd5b7fb05f1fbf000000000000000000000000000000000000000000000000000000005f5260045ffd5b7f29dfa3ce000000000000000000000000000000000000000000000000000000005f5260045ffd5b346100b8575f6003193601126100b85760205f54604051908152f35b346100b85760806003193601126100b857600435610716610b17565b90604435916064359067ffffffffffffffff82116100b857366023830112156100b85781600401359267ffffffffffffffff84116100b8573660248560051b850101116100b857610765610c59565b5f548110156101945761077781610b3a565b5094600286015460ff8160401c16908115610a5e575b50610a3657815f52600160205260405f2073ffffffffffffffffffffffffffffffffffffffff84165f5260205260ff60405f205416610a0e57604051926020840130815283604086015273ffffffffffffffffffffffffffffffffffffffff8216948560608201528360808201526080815261080a60a082610bbb565b5190206040516020810191825260208152610826604082610bbb565b5190209680545f985b888a10156108705760248a60051b89010135908181105f1461085f575f52602052600160405f205b99019861082f565b905f52602052600160405f20610857565b036109e6576001019081548060801c90848201809211610409576fffffffffffffffffffffffffffffffff16106109be57835f52600160205260405f20855f5260205260405f2060017fffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff008254161790556fffffffffffffffffffffffffffffffff8316825460801c01906fffffffffffffffffffffffffffffffff8211610409575f8481949261095e83958495906fffffffffffffffffffffffffffffffff7fffffffffffffffffffffffffffffffff0000000000000000000000000000000083549260801b169116179055565b5af1610968610bfc565b50156106665760207f4ec90e965519d92681267467f775ada5bd214aa92c0dc93d90a5e880ce9ed02691604051908152a35f7f9b779b17422d0df92223018b32b4d1fa46e071723d6817e2486d003becc55f005d005b7f508ece93000000000000000000000000000000000000000000000000000000005f5260045ffd5b7f7ca55c77000000000000000000000000000000000000000000000000000000005f5260045ffd5b7f646cf558000000000000000000000000000000000000000000000000000000005f5260045ffd5b7fd75047ca000000000000000000000000000000000000000000000000000000005f5260045ffd5b67ffffffffffffffff91501642118761078d565b346100b85760406003193601126100b857610a8b610b17565b6004355f52600160205273ffffffffffffffffffffffffffffffffffffffff60405f2091165f52602052602060ff60405f2054166040519015158152f35b346100b8575f6003193601126100b85760209073ffffffffffffffffffffffffffffffffffffffff7f0000000000000000000000000000000000000000000000000000000000000000168152f35b6024359073ffffffffffffffffffffffffffffffffffffffff821682036100b857565b5f54811015610b72575f8080526003919091027f290decd9548b62a8d60345a988386fc84ba6bc95484008f6362f93160ef3e5630191565b7f4e487b71000000000000000000000000000000000000000000000000000000005f52603260045260245ffd5b60a0810190811067ffffffffffffffff82111761046257604052565b90601f7fffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffe0910116810190811067ffffffffffffffff82111761046257604052565b3d15610c54573d9067ffffffffffffffff82116104625760405191610c4960207fffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffe0601f8401160184610bbb565b82523d5f602084013e565b606090565b7f9b779b17422d0df92223018b32b4d1fa46e071723d6817e2486d003becc55f005c610ca55760017f9b779b17422d0df92223018b32b4d1fa46e071723d6817e2486d003becc55f005d565b7f3ee5aeb5000000000000000000000000000000000000000000000000000000005f5260045ffd",
}

// PoolPayouts is an auto generated Go binding around an Ethereum contract.
type PoolPayouts struct {
	abi abi.ABI
}

// GetABI returns the ABI associated with this contract binding.
func (c *PoolPayouts) GetABI() abi.ABI {
	return c.abi
}

// NewPoolPayouts creates a new instance of PoolPayouts.
func NewPoolPayouts() *PoolPayouts {
	parsed, err := PoolPayoutsMetaData.ParseABI()
	if err != nil {
		panic(errors.New("invalid ABI: " + err.Error()))
	}
	return &PoolPayouts{abi: *parsed}
}

// Instance creates a wrapper for a deployed contract instance at the given address.
// Use this to create the instance object passed to abigen v2 library functions Call, Transact, etc.
func (c *PoolPayouts) Instance(backend bind.ContractBackend, addr common.Address) *bind.BoundContract {
	return bind.NewBoundContract(addr, c.abi, backend, backend, backend)
}

// PackConstructor is the Go binding used to pack the parameters required for
// contract deployment.
//
// Solidity: constructor(address coordinator_, uint64 claimWindow_) returns()
func (poolPayouts *PoolPayouts) PackConstructor(coordinator_ common.Address, claimWindow_ uint64) []byte {
	enc, err := poolPayouts.abi.Pack("", coordinator_, claimWindow_)
	if err != nil {
		panic(err)
	}
	return enc
}

// PackClaim is the Go binding used to pack the parameters required for calling
// the contract method with ID 0x2e7ba6ef.  This method will panic if any
// invalid/nil inputs are passed.
//
// Solidity: function claim(uint256 epoch, address member, uint256 amount, bytes32[] proof) returns()
func (poolPayouts *PoolPayouts) PackClaim(epoch *big.Int, member common.Address, amount *big.Int, proof [][32]byte) []byte {
	enc, err := poolPayouts.abi.Pack("claim", epoch, member, amount, proof)
	if err != nil {
		panic(err)
	}
	return enc
}

// TryPackClaim is the Go binding used to pack the parameters required for calling
// the contract method with ID 0x2e7ba6ef.  This method will return an error
// if any inputs are invalid/nil.
//
// Solidity: function claim(uint256 epoch, address member, uint256 amount, bytes32[] proof) returns()
func (poolPayouts *PoolPayouts) TryPackClaim(epoch *big.Int, member common.Address, amount *big.Int, proof [][32]byte) ([]byte, error) {
	return poolPayouts.abi.Pack("claim", epoch, member, amount, proof)
}

// PackClaimWindow is the Go binding used to pack the parameters required for calling
// the contract method with ID 0xc5d37ae1.  This method will panic if any
// invalid/nil inputs are passed.
//
// Solidity: function claimWindow() view returns(uint64)
func (poolPayouts *PoolPayouts) PackClaimWindow() []byte {
	enc, err := poolPayouts.abi.Pack("claimWindow")
	if err != nil {
		panic(err)
	}
	return enc
}

// TryPackClaimWindow is the Go binding used to pack the parameters required for calling
// the contract method with ID 0xc5d37ae1.  This method will return an error
// if any inputs are invalid/nil.
//
// Solidity: function claimWindow() view returns(uint64)
func (poolPayouts *PoolPayouts) TryPackClaimWindow() ([]byte, error) {
	return poolPayouts.abi.Pack("claimWindow")
}

// UnpackClaimWindow is the Go binding that unpacks the parameters returned
// from invoking the contract method with ID 0xc5d37ae1.
//
// Solidity: function claimWindow() view returns(uint64)
func (poolPayouts *PoolPayouts) UnpackClaimWindow(data []byte) (uint64, error) {
	out, err := poolPayouts.abi.Unpack("claimWindow", data)
	if err != nil {
		return *new(uint64), err
	}
	out0 := *abi.ConvertType(out[0], new(uint64)).(*uint64)
	return out0, nil
}

// PackClaimed is the Go binding used to pack the parameters required for calling
// the contract method with ID 0x120aa877.  This method will panic if any
// invalid/nil inputs are passed.
//
// Solidity: function claimed(uint256 epoch, address member) view returns(bool)
func (poolPayouts *PoolPayouts) PackClaimed(epoch *big.Int, member common.Address) []byte {
	enc, err := poolPayouts.abi.Pack("claimed", epoch, member)
	if err != nil {
		panic(err)
	}
	return enc
}

// TryPackClaimed is the Go binding used to pack the parameters required for calling
// the contract method with ID 0x120aa877.  This method will return an error
// if any inputs are invalid/nil.
//
// Solidity: function claimed(uint256 epoch, address member) view returns(bool)
func (poolPayouts *PoolPayouts) TryPackClaimed(epoch *big.Int, member common.Address) ([]byte, error) {
	return poolPayouts.abi.Pack("claimed", epoch, member)
}

// UnpackClaimed is the Go binding that unpacks the parameters returned
// from invoking the contract method with ID 0x120aa877.
//
// Solidity: function claimed(uint256 epoch, address member) view returns(bool)
func (poolPayouts *PoolPayouts) UnpackClaimed(data []byte) (bool, error) {
	out, err := poolPayouts.abi.Unpack("claimed", data)
	if err != nil {
		return *new(bool), err
	}
	out0 := *abi.ConvertType(out[0], new(bool)).(*bool)
	return out0, nil
}

// PackCoordinator is the Go binding used to pack the parameters required for calling
// the contract method with ID 0x0a009097.  This method will panic if any
// invalid/nil inputs are passed.
//
// Solidity: function coordinator() view returns(address)
func (poolPayouts *PoolPayouts) PackCoordinator() []byte {
	enc, err := poolPayouts.abi.Pack("coordinator")
	if err != nil {
		panic(err)
	}
	return enc
}

// TryPackCoordinator is the Go binding used to pack the parameters required for calling
// the contract method with ID 0x0a009097.  This method will return an error
// if any inputs are invalid/nil.
//
// Solidity: function coordinator() view returns(address)
func (poolPayouts *PoolPayouts) TryPackCoordinator() ([]byte, error) {
	return poolPayouts.abi.Pack("coordinator")
}

// UnpackCoordinator is the Go binding that unpacks the parameters returned
// from invoking the contract method with ID 0x0a009097.
//
// Solidity: function coordinator() view returns(address)
func (poolPayouts *PoolPayouts) UnpackCoordinator(data []byte) (common.Address, error) {
	out, err := poolPayouts.abi.Unpack("coordinator", data)
	if err != nil {
		return *new(common.Address), err
	}
	out0 := *abi.ConvertType(out[0], new(common.Address)).(*common.Address)
	return out0, nil
}

// PackEpochCount is the Go binding used to pack the parameters required for calling
// the contract method with ID 0x829965cc.  This method will panic if any
// invalid/nil inputs are passed.
//
// Solidity: function epochCount() view returns(uint256)
func (poolPayouts *PoolPayouts) PackEpochCount() []byte {
	enc, err := poolPayouts.abi.Pack("epochCount")
	if err != nil {
		panic(err)
	}
	return enc
}

// TryPackEpochCount is the Go binding used to pack the parameters required for calling
// the contract method with ID 0x829965cc.  This method will return an error
// if any inputs are invalid/nil.
//
// Solidity: function epochCount() view returns(uint256)
func (poolPayouts *PoolPayouts) TryPackEpochCount() ([]byte, error) {
	return poolPayouts.abi.Pack("epochCount")
}

// UnpackEpochCount is the Go binding that unpacks the parameters returned
// from invoking the contract method with ID 0x829965cc.
//
// Solidity: function epochCount() view returns(uint256)
func (poolPayouts *PoolPayouts) UnpackEpochCount(data []byte) (*big.Int, error) {
	out, err := poolPayouts.abi.Unpack("epochCount", data)
	if err != nil {
		return new(big.Int), err
	}
	out0 := abi.ConvertType(out[0], new(big.Int)).(*big.Int)
	return out0, nil
}

// PackGetEpoch is the Go binding used to pack the parameters required for calling
// the contract method with ID 0xbc0bc6ba.  This method will panic if any
// invalid/nil inputs are passed.
//
// Solidity: function getEpoch(uint256 epoch) view returns((bytes32,uint128,uint128,uint64,bool))
func (poolPayouts *PoolPayouts) PackGetEpoch(epoch *big.Int) []byte {
	enc, err := poolPayouts.abi.Pack("getEpoch", epoch)
	if err != nil {
		panic(err)
	}
	return enc
}

// TryPackGetEpoch is the Go binding used to pack the parameters required for calling
// the contract method with ID 0xbc0bc6ba.  This method will return an error
// if any inputs are invalid/nil.
//
// Solidity: function getEpoch(uint256 epoch) view returns((bytes32,uint128,uint128,uint64,bool))
func (poolPayouts *PoolPayouts) TryPackGetEpoch(epoch *big.Int) ([]byte, error) {
	return poolPayouts.abi.Pack("getEpoch", epoch)
}

// UnpackGetEpoch is the Go binding that unpacks the parameters returned
// from invoking the contract method with ID 0xbc0bc6ba.
//
// Solidity: function getEpoch(uint256 epoch) view returns((bytes32,uint128,uint128,uint64,bool))
func (poolPayouts *PoolPayouts) UnpackGetEpoch(data []byte) (PoolPayoutsEpoch, error) {
	out, err := poolPayouts.abi.Unpack("getEpoch", data)
	if err != nil {
		return *new(PoolPayoutsEpoch), err
	}
	out0 := *abi.ConvertType(out[0], new(PoolPayoutsEpoch)).(*PoolPayoutsEpoch)
	return out0, nil
}

// PackPublish is the Go binding used to pack the parameters required for calling
// the contract method with ID 0xb19d632b.  This method will panic if any
// invalid/nil inputs are passed.
//
// Solidity: function publish(bytes32 root, uint256 total) payable returns(uint256 epoch)
func (poolPayouts *PoolPayouts) PackPublish(root [32]byte, total *big.Int) []byte {
	enc, err := poolPayouts.abi.Pack("publish", root, total)
	if err != nil {
		panic(err)
	}
	return enc
}

// TryPackPublish is the Go binding used to pack the parameters required for calling
// the contract method with ID 0xb19d632b.  This method will return an error
// if any inputs are invalid/nil.
//
// Solidity: function publish(bytes32 root, uint256 total) payable returns(uint256 epoch)
func (poolPayouts *PoolPayouts) TryPackPublish(root [32]byte, total *big.Int) ([]byte, error) {
	return poolPayouts.abi.Pack("publish", root, total)
}

// UnpackPublish is the Go binding that unpacks the parameters returned
// from invoking the contract method with ID 0xb19d632b.
//
// Solidity: function publish(bytes32 root, uint256 total) payable returns(uint256 epoch)
func (poolPayouts *PoolPayouts) UnpackPublish(data []byte) (*big.Int, error) {
	out, err := poolPayouts.abi.Unpack("publish", data)
	if err != nil {
		return new(big.Int), err
	}
	out0 := abi.ConvertType(out[0], new(big.Int)).(*big.Int)
	return out0, nil
}

// PackSweep is the Go binding used to pack the parameters required for calling
// the contract method with ID 0xaa60e733.  This method will panic if any
// invalid/nil inputs are passed.
//
// Solidity: function sweep(uint256 epoch) returns()
func (poolPayouts *PoolPayouts) PackSweep(epoch *big.Int) []byte {
	enc, err := poolPayouts.abi.Pack("sweep", epoch)
	if err != nil {
		panic(err)
	}
	return enc
}

// TryPackSweep is the Go binding used to pack the parameters required for calling
// the contract method with ID 0xaa60e733.  This method will return an error
// if any inputs are invalid/nil.
//
// Solidity: function sweep(uint256 epoch) returns()
func (poolPayouts *PoolPayouts) TryPackSweep(epoch *big.Int) ([]byte, error) {
	return poolPayouts.abi.Pack("sweep", epoch)
}

// PoolPayoutsClaimed represents a Claimed event raised by the PoolPayouts contract.
type PoolPayoutsClaimed struct {
	Epoch  *big.Int
	Member common.Address
	Amount *big.Int
	Raw    *types.Log // Blockchain specific contextual infos
}

const PoolPayoutsClaimedEventName = "Claimed"

// ContractEventName returns the user-defined event name.
func (PoolPayoutsClaimed) ContractEventName() string {
	return PoolPayoutsClaimedEventName
}

// UnpackClaimedEvent is the Go binding that unpacks the event data emitted
// by contract.
//
// Solidity: event Claimed(uint256 indexed epoch, address indexed member, uint256 amount)
func (poolPayouts *PoolPayouts) UnpackClaimedEvent(log *types.Log) (*PoolPayoutsClaimed, error) {
	event := "Claimed"
	if len(log.Topics) == 0 {
		return nil, bind.ErrNoEventSignature
	}
	if log.Topics[0] != poolPayouts.abi.Events[event].ID {
		return nil, bind.ErrEventSignatureMismatch
	}
	out := new(PoolPayoutsClaimed)
	if len(log.Data) > 0 {
		if err := poolPayouts.abi.UnpackIntoInterface(out, event, log.Data); err != nil {
			return nil, err
		}
	}
	var indexed abi.Arguments
	for _, arg := range poolPayouts.abi.Events[event].Inputs {
		if arg.Indexed {
			indexed = append(indexed, arg)
		}
	}
	if err := abi.ParseTopics(out, indexed, log.Topics[1:]); err != nil {
		return nil, err
	}
	out.Raw = log
	return out, nil
}

// PoolPayoutsEpochPublished represents a EpochPublished event raised by the PoolPayouts contract.
type PoolPayoutsEpochPublished struct {
	Epoch    *big.Int
	Root     [32]byte
	Total    *big.Int
	Deadline uint64
	Raw      *types.Log // Blockchain specific contextual infos
}

const PoolPayoutsEpochPublishedEventName = "EpochPublished"

// ContractEventName returns the user-defined event name.
func (PoolPayoutsEpochPublished) ContractEventName() string {
	return PoolPayoutsEpochPublishedEventName
}

// UnpackEpochPublishedEvent is the Go binding that unpacks the event data emitted
// by contract.
//
// Solidity: event EpochPublished(uint256 indexed epoch, bytes32 root, uint256 total, uint64 deadline)
func (poolPayouts *PoolPayouts) UnpackEpochPublishedEvent(log *types.Log) (*PoolPayoutsEpochPublished, error) {
	event := "EpochPublished"
	if len(log.Topics) == 0 {
		return nil, bind.ErrNoEventSignature
	}
	if log.Topics[0] != poolPayouts.abi.Events[event].ID {
		return nil, bind.ErrEventSignatureMismatch
	}
	out := new(PoolPayoutsEpochPublished)
	if len(log.Data) > 0 {
		if err := poolPayouts.abi.UnpackIntoInterface(out, event, log.Data); err != nil {
			return nil, err
		}
	}
	var indexed abi.Arguments
	for _, arg := range poolPayouts.abi.Events[event].Inputs {
		if arg.Indexed {
			indexed = append(indexed, arg)
		}
	}
	if err := abi.ParseTopics(out, indexed, log.Topics[1:]); err != nil {
		return nil, err
	}
	out.Raw = log
	return out, nil
}

// PoolPayoutsSwept represents a Swept event raised by the PoolPayouts contract.
type PoolPayoutsSwept struct {
	Epoch  *big.Int
	Amount *big.Int
	Raw    *types.Log // Blockchain specific contextual infos
}

const PoolPayoutsSweptEventName = "Swept"

// ContractEventName returns the user-defined event name.
func (PoolPayoutsSwept) ContractEventName() string {
	return PoolPayoutsSweptEventName
}

// UnpackSweptEvent is the Go binding that unpacks the event data emitted
// by contract.
//
// Solidity: event Swept(uint256 indexed epoch, uint256 amount)
func (poolPayouts *PoolPayouts) UnpackSweptEvent(log *types.Log) (*PoolPayoutsSwept, error) {
	event := "Swept"
	if len(log.Topics) == 0 {
		return nil, bind.ErrNoEventSignature
	}
	if log.Topics[0] != poolPayouts.abi.Events[event].ID {
		return nil, bind.ErrEventSignatureMismatch
	}
	out := new(PoolPayoutsSwept)
	if len(log.Data) > 0 {
		if err := poolPayouts.abi.UnpackIntoInterface(out, event, log.Data); err != nil {
			return nil, err
		}
	}
	var indexed abi.Arguments
	for _, arg := range poolPayouts.abi.Events[event].Inputs {
		if arg.Indexed {
			indexed = append(indexed, arg)
		}
	}
	if err := abi.ParseTopics(out, indexed, log.Topics[1:]); err != nil {
		return nil, err
	}
	out.Raw = log
	return out, nil
}

// UnpackError attempts to decode the provided error data using user-defined
// error definitions.
func (poolPayouts *PoolPayouts) UnpackError(raw []byte) (any, error) {
	if bytes.Equal(raw[:4], poolPayouts.abi.Errors["AlreadyClaimed"].ID.Bytes()[:4]) {
		return poolPayouts.UnpackAlreadyClaimedError(raw[4:])
	}
	if bytes.Equal(raw[:4], poolPayouts.abi.Errors["AlreadySwept"].ID.Bytes()[:4]) {
		return poolPayouts.UnpackAlreadySweptError(raw[4:])
	}
	if bytes.Equal(raw[:4], poolPayouts.abi.Errors["BadEpoch"].ID.Bytes()[:4]) {
		return poolPayouts.UnpackBadEpochError(raw[4:])
	}
	if bytes.Equal(raw[:4], poolPayouts.abi.Errors["BadProof"].ID.Bytes()[:4]) {
		return poolPayouts.UnpackBadProofError(raw[4:])
	}
	if bytes.Equal(raw[:4], poolPayouts.abi.Errors["BadValue"].ID.Bytes()[:4]) {
		return poolPayouts.UnpackBadValueError(raw[4:])
	}
	if bytes.Equal(raw[:4], poolPayouts.abi.Errors["ClaimWindowOpen"].ID.Bytes()[:4]) {
		return poolPayouts.UnpackClaimWindowOpenError(raw[4:])
	}
	if bytes.Equal(raw[:4], poolPayouts.abi.Errors["ClaimWindowOver"].ID.Bytes()[:4]) {
		return poolPayouts.UnpackClaimWindowOverError(raw[4:])
	}
	if bytes.Equal(raw[:4], poolPayouts.abi.Errors["NotCoordinator"].ID.Bytes()[:4]) {
		return poolPayouts.UnpackNotCoordinatorError(raw[4:])
	}
	if bytes.Equal(raw[:4], poolPayouts.abi.Errors["OverClaim"].ID.Bytes()[:4]) {
		return poolPayouts.UnpackOverClaimError(raw[4:])
	}
	if bytes.Equal(raw[:4], poolPayouts.abi.Errors["ReentrancyGuardReentrantCall"].ID.Bytes()[:4]) {
		return poolPayouts.UnpackReentrancyGuardReentrantCallError(raw[4:])
	}
	if bytes.Equal(raw[:4], poolPayouts.abi.Errors["TransferFailed"].ID.Bytes()[:4]) {
		return poolPayouts.UnpackTransferFailedError(raw[4:])
	}
	return nil, errors.New("Unknown error")
}

// PoolPayoutsAlreadyClaimed represents a AlreadyClaimed error raised by the PoolPayouts contract.
type PoolPayoutsAlreadyClaimed struct {
}

// ErrorID returns the hash of canonical representation of the error's signature.
//
// Solidity: error AlreadyClaimed()
func PoolPayoutsAlreadyClaimedErrorID() common.Hash {
	return common.HexToHash("0x646cf558a545d59f8a09cbf8a0eb8a9332f1d17834843b20fc8d154839dc46d7")
}

// UnpackAlreadyClaimedError is the Go binding used to decode the provided
// error data into the corresponding Go error struct.
//
// Solidity: error AlreadyClaimed()
func (poolPayouts *PoolPayouts) UnpackAlreadyClaimedError(raw []byte) (*PoolPayoutsAlreadyClaimed, error) {
	out := new(PoolPayoutsAlreadyClaimed)
	if err := poolPayouts.abi.UnpackIntoInterface(out, "AlreadyClaimed", raw); err != nil {
		return nil, err
	}
	return out, nil
}

// PoolPayoutsAlreadySwept represents a AlreadySwept error raised by the PoolPayouts contract.
type PoolPayoutsAlreadySwept struct {
}

// ErrorID returns the hash of canonical representation of the error's signature.
//
// Solidity: error AlreadySwept()
func PoolPayoutsAlreadySweptErrorID() common.Hash {
	return common.HexToHash("0xb05f1fbf937cf229fe507490b5234e2df62b6c57bf8a6a103174276fb946939e")
}

// UnpackAlreadySweptError is the Go binding used to decode the provided
// error data into the corresponding Go error struct.
//
// Solidity: error AlreadySwept()
func (poolPayouts *PoolPayouts) UnpackAlreadySweptError(raw []byte) (*PoolPayoutsAlreadySwept, error) {
	out := new(PoolPayoutsAlreadySwept)
	if err := poolPayouts.abi.UnpackIntoInterface(out, "AlreadySwept", raw); err != nil {
		return nil, err
	}
	return out, nil
}

// PoolPayoutsBadEpoch represents a BadEpoch error raised by the PoolPayouts contract.
type PoolPayoutsBadEpoch struct {
}

// ErrorID returns the hash of canonical representation of the error's signature.
//
// Solidity: error BadEpoch()
func PoolPayoutsBadEpochErrorID() common.Hash {
	return common.HexToHash("0x0aa733db73f0bf634138668fb1d47e001e7d241d98ad05a1f342a3372926e40f")
}

// UnpackBadEpochError is the Go binding used to decode the provided
// error data into the corresponding Go error struct.
//
// Solidity: error BadEpoch()
func (poolPayouts *PoolPayouts) UnpackBadEpochError(raw []byte) (*PoolPayoutsBadEpoch, error) {
	out := new(PoolPayoutsBadEpoch)
	if err := poolPayouts.abi.UnpackIntoInterface(out, "BadEpoch", raw); err != nil {
		return nil, err
	}
	return out, nil
}

// PoolPayoutsBadProof represents a BadProof error raised by the PoolPayouts contract.
type PoolPayoutsBadProof struct {
}

// ErrorID returns the hash of canonical representation of the error's signature.
//
// Solidity: error BadProof()
func PoolPayoutsBadProofErrorID() common.Hash {
	return common.HexToHash("0x7ca55c774976027f27f73629387ed99a2044a8721aec39c3c2717944b08c423a")
}

// UnpackBadProofError is the Go binding used to decode the provided
// error data into the corresponding Go error struct.
//
// Solidity: error BadProof()
func (poolPayouts *PoolPayouts) UnpackBadProofError(raw []byte) (*PoolPayoutsBadProof, error) {
	out := new(PoolPayoutsBadProof)
	if err := poolPayouts.abi.UnpackIntoInterface(out, "BadProof", raw); err != nil {
		return nil, err
	}
	return out, nil
}

// PoolPayoutsBadValue represents a BadValue error raised by the PoolPayouts contract.
type PoolPayoutsBadValue struct {
}

// ErrorID returns the hash of canonical representation of the error's signature.
//
// Solidity: error BadValue()
func PoolPayoutsBadValueErrorID() common.Hash {
	return common.HexToHash("0x0bba69fbe222b1d016f3544ef6d7d291c985b588459c59343070fa1c424f6962")
}

// UnpackBadValueError is the Go binding used to decode the provided
// error data into the corresponding Go error struct.
//
// Solidity: error BadValue()
func (poolPayouts *PoolPayouts) UnpackBadValueError(raw []byte) (*PoolPayoutsBadValue, error) {
	out := new(PoolPayoutsBadValue)
	if err := poolPayouts.abi.UnpackIntoInterface(out, "BadValue", raw); err != nil {
		return nil, err
	}
	return out, nil
}

// PoolPayoutsClaimWindowOpen represents a ClaimWindowOpen error raised by the PoolPayouts contract.
type PoolPayoutsClaimWindowOpen struct {
}

// ErrorID returns the hash of canonical representation of the error's signature.
//
// Solidity: error ClaimWindowOpen()
func PoolPayoutsClaimWindowOpenErrorID() common.Hash {
	return common.HexToHash("0x29dfa3ce160d6888a382b54eac54d2b825d9bdc405bb4401329b47b4278265a1")
}

// UnpackClaimWindowOpenError is the Go binding used to decode the provided
// error data into the corresponding Go error struct.
//
// Solidity: error ClaimWindowOpen()
func (poolPayouts *PoolPayouts) UnpackClaimWindowOpenError(raw []byte) (*PoolPayoutsClaimWindowOpen, error) {
	out := new(PoolPayoutsClaimWindowOpen)
	if err := poolPayouts.abi.UnpackIntoInterface(out, "ClaimWindowOpen", raw); err != nil {
		return nil, err
	}
	return out, nil
}

// PoolPayoutsClaimWindowOver represents a ClaimWindowOver error raised by the PoolPayouts contract.
type PoolPayoutsClaimWindowOver struct {
}

// ErrorID returns the hash of canonical representation of the error's signature.
//
// Solidity: error ClaimWindowOver()
func PoolPayoutsClaimWindowOverErrorID() common.Hash {
	return common.HexToHash("0xd75047ca9ff081d35e2bae76ecda949a67bb8949fe8c6514bf9771bbbbced117")
}

// UnpackClaimWindowOverError is the Go binding used to decode the provided
// error data into the corresponding Go error struct.
//
// Solidity: error ClaimWindowOver()
func (poolPayouts *PoolPayouts) UnpackClaimWindowOverError(raw []byte) (*PoolPayoutsClaimWindowOver, error) {
	out := new(PoolPayoutsClaimWindowOver)
	if err := poolPayouts.abi.UnpackIntoInterface(out, "ClaimWindowOver", raw); err != nil {
		return nil, err
	}
	return out, nil
}

// PoolPayoutsNotCoordinator represents a NotCoordinator error raised by the PoolPayouts contract.
type PoolPayoutsNotCoordinator struct {
}

// ErrorID returns the hash of canonical representation of the error's signature.
//
// Solidity: error NotCoordinator()
func PoolPayoutsNotCoordinatorErrorID() common.Hash {
	return common.HexToHash("0x9ec853e6dcc97bd4bcbc6d62dece1207ebdc35cb919c5bdee6a6ed42024c1b44")
}

// UnpackNotCoordinatorError is the Go binding used to decode the provided
// error data into the corresponding Go error struct.
//
// Solidity: error NotCoordinator()
func (poolPayouts *PoolPayouts) UnpackNotCoordinatorError(raw []byte) (*PoolPayoutsNotCoordinator, error) {
	out := new(PoolPayoutsNotCoordinator)
	if err := poolPayouts.abi.UnpackIntoInterface(out, "NotCoordinator", raw); err != nil {
		return nil, err
	}
	return out, nil
}

// PoolPayoutsOverClaim represents a OverClaim error raised by the PoolPayouts contract.
type PoolPayoutsOverClaim struct {
}

// ErrorID returns the hash of canonical representation of the error's signature.
//
// Solidity: error OverClaim()
func PoolPayoutsOverClaimErrorID() common.Hash {
	return common.HexToHash("0x508ece93457323e6dd398ae40edd8655a070ec1ee5eb5b5fe3d8ad8d4f7f9f41")
}

// UnpackOverClaimError is the Go binding used to decode the provided
// error data into the corresponding Go error struct.
//
// Solidity: error OverClaim()
func (poolPayouts *PoolPayouts) UnpackOverClaimError(raw []byte) (*PoolPayoutsOverClaim, error) {
	out := new(PoolPayoutsOverClaim)
	if err := poolPayouts.abi.UnpackIntoInterface(out, "OverClaim", raw); err != nil {
		return nil, err
	}
	return out, nil
}

// PoolPayoutsReentrancyGuardReentrantCall represents a ReentrancyGuardReentrantCall error raised by the PoolPayouts contract.
type PoolPayoutsReentrancyGuardReentrantCall struct {
}

// ErrorID returns the hash of canonical representation of the error's signature.
//
// Solidity: error ReentrancyGuardReentrantCall()
func PoolPayoutsReentrancyGuardReentrantCallErrorID() common.Hash {
	return common.HexToHash("0x3ee5aeb571de7fc460830b4d0017439a1ca56fb0bc39062227ade4fe4a24c1ca")
}

// UnpackReentrancyGuardReentrantCallError is the Go binding used to decode the provided
// error data into the corresponding Go error struct.
//
// Solidity: error ReentrancyGuardReentrantCall()
func (poolPayouts *PoolPayouts) UnpackReentrancyGuardReentrantCallError(raw []byte) (*PoolPayoutsReentrancyGuardReentrantCall, error) {
	out := new(PoolPayoutsReentrancyGuardReentrantCall)
	if err := poolPayouts.abi.UnpackIntoInterface(out, "ReentrancyGuardReentrantCall", raw); err != nil {
		return nil, err
	}
	return out, nil
}

// PoolPayoutsTransferFailed represents a TransferFailed error raised by the PoolPayouts contract.
type PoolPayoutsTransferFailed struct {
}

// ErrorID returns the hash of canonical representation of the error's signature.
//
// Solidity: error TransferFailed()
func PoolPayoutsTransferFailedErrorID() common.Hash {
	return common.HexToHash("0x90b8ec1877afffd816d05d9b13947f3ff18ec5851c38bad15ec2b710f92391b1")
}

// UnpackTransferFailedError is the Go binding used to decode the provided
// error data into the corresponding Go error struct.
//
// Solidity: error TransferFailed()
func (poolPayouts *PoolPayouts) UnpackTransferFailedError(raw []byte) (*PoolPayoutsTransferFailed, error) {
	out := new(PoolPayoutsTransferFailed)
	if err := poolPayouts.abi.UnpackIntoInterface(out, "TransferFailed", raw); err != nil {
		return nil, err
	}
	return out, nil
}
