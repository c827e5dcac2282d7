package ai.longrwkv.core.backend.cuda;

/** The JNI entry points of the emulated device (emu/emu_jni.cpp, built and loaded by {@link EmulatedDevice}). */
final class EmulatorNative {
    private EmulatorNative() { }

    /** dlopen of a module library; 0 with the reason in error[0]. */
    static native long open(String path, String[] error);

    /** [maxThreadsPerBlock (0: no bound), nparams, size of each parameter...], or null when the module has no such kernel. */
    static native int[] kernel(long module, String name);

    /** Runs the kernel to completion; null on success, else the emulator's message. */
    static native String launch(long module, String name, int gx, int gy, int gz, int bx, int by, int bz, long params, boolean threads);
}
