//! mosquitto-compatible password file (being written).
