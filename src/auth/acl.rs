//! mosquitto-compatible ACL file (being written).
