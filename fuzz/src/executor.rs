//! A glommio executor made once per thread and reused for every input
//! (making one sets up io_uring rings, far dearer than running an input).

use std::future::Future;

use glommio::{LocalExecutor, LocalExecutorBuilder, Placement};

thread_local! {
    static EXECUTOR: LocalExecutor = LocalExecutorBuilder::new(Placement::Unbound)
        .name("fuzz")
        .make()
        .expect("glommio executor");
}

/// Runs `fut` to completion on this thread's executor.
pub fn block_on<T>(fut: impl Future<Output = T>) -> T {
    EXECUTOR.with(|ex| ex.run(fut))
}
