package ipfs

// Helpers for the external tests (package ipfs_test), which drive this node through the
// daemon's route table.
var (
	NewHostForTest     = newHost
	NewNodeForTest     = newNode
	ConnectForTest     = connect
	AddrInfoForTest    = addrInfo
	WriteRandomForTest = writeRandom
	SameFileForTest    = sameFile
	TestLoggerForTest  = testLogger
)
