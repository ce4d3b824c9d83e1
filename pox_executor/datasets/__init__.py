"""Confidential datasets: the encrypted file formats, the dataset manifest, and the steps of a
data owner (encrypt, push, register, grant) and of a job (fetch the key, decrypt in memory).

`encryption` owns the byte formats (PoX's chunked AES-256-GCM and iExec's IV + AES-256-CBC);
`manifest` the JSON file that travels with an encrypted dataset; `owner` the data owner's
steps; `registry` the DatasetRegistry contract calls. Nothing here runs jobs or serves keys.
"""
