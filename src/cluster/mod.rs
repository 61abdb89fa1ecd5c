//! The node side of a cluster: the hash ring clients place keys with.
//!
//! Nodes do not form a cluster of their own: the node list comes from the
//! discovery endpoint (`crate::discovery`). This module computes, for that
//! list, where clients will look for a key ([`ring::Ring::owner`]) and where
//! they will look once its owner has left the list
//! ([`ring::Ring::successor`]).

pub mod ring;
