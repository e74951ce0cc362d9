//! `ringmqctl`: the management command line (see `ringmq_mgmt::ctl`).

fn main() {
    std::process::exit(ringmq_mgmt::ctl::main_with(std::env::args()))
}
