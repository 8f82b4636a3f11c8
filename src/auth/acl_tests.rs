//! Tests of [`super::Acl`]: one per rule kind and per malformed line.
