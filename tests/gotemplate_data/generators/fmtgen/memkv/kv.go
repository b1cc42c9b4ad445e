package memkv

type KVPair struct {
	Key   string
	Value string
}
