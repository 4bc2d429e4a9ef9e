//! A revisioned key-value store with etcd semantics: memory, SQLite and etcd backends.
