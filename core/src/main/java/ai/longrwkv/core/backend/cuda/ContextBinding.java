package ai.longrwkv.core.backend.cuda;

/**
 * Keeps one CUDA context current on whichever thread calls the driver. It asks the driver every time (cuCtxGetCurrent
 * costs nanoseconds) instead of remembering per thread that it already bound the context: such a flag goes stale as
 * soon as other code (another backend, a library) binds another context on the same thread, and every later call then
 * runs against the wrong context or fails with an invalid-context error.
 */
final class ContextBinding {
    /** The two driver calls it needs; contexts are their handles' addresses. */
    interface Driver {
        long current();

        void setCurrent(long context);
    }

    private final Driver driver;
    private final long context;

    ContextBinding(Driver driver, long context) {
        this.driver = driver;
        this.context = context;
    }

    /** Makes the context current on the calling thread if it is not. */
    void bind() {
        if (driver.current() != context) driver.setCurrent(context);
    }
}
