"""Content addressing: IPFS CIDs computed offline, a local content-addressed store, CARv1
export, and a small client for Kubo's RPC API.

`multiformats` (varints, multibase, CIDs), `dagpb` (the dag-pb and UnixFS protobuf codecs),
`unixfs` (the importer that builds the same DAG as `ipfs add`, one named profile per layout),
`car` (CARv1 writer and reader), `localstore` (the embedded default store), `kubo` (the RPC
client) and `backends` (one `push`/`fetch` interface over the two). Nothing here knows about
datasets, keys or chains.
"""
