//! `ringmq-loadgen`: the bundled load generator. Built out in the load generator issue; today it
//! only proves that the workspace links the broker's codec.

fn main() {
    println!("ringmq-loadgen {}", ringmq::VERSION);
}
