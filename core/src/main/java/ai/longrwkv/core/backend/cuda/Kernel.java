package ai.longrwkv.core.backend.cuda;

import org.bytedeco.javacpp.LongPointer;
import org.bytedeco.javacpp.Pointer;
import org.bytedeco.javacpp.PointerPointer;

/**
 * One kernel with its own parameter block: cuLaunchKernel wants, for argument i, the host address of a cell that
 * holds the value. The cells (8 bytes each) and the array of their addresses are allocated once per kernel; the
 * driver copies the values at launch, so the cells can be rewritten for the next launch straight away.
 *
 * <p>Every launch is checked against the kernel's own parameter list (from the device: cuFuncGetParamInfo on a GPU,
 * the compiled signature on the emulator): the number of arguments and the size of each, so that a missing argument
 * or an int where the kernel takes a 64-bit value fails here instead of reading the previous launch's cells.
 */
final class Kernel {
    private static final int MAX_ARGS = 32;
    /** Set -Dlongrwkv.cuda.sync=true to wait after every launch (errors then name the kernel that failed). */
    private static final boolean SYNC = Boolean.getBoolean("longrwkv.cuda.sync");
    final String name;
    private final Device device;
    private final Device.DeviceFunction fn;
    private final LongPointer cells = new LongPointer(MAX_ARGS);
    private final PointerPointer<?> params = new PointerPointer<>(MAX_ARGS);

    Kernel(Device device, Device.DeviceFunction fn) {
        this.device = device;
        this.fn = fn;
        this.name = fn.name();
        for (int i = 0; i < MAX_ARGS; i++) params.put(i, new Address(cells.address() + 8L * i));
    }

    /** A pointer to an arbitrary host address (a cell inside the parameter block). */
    static final class Address extends Pointer {
        Address(long address) {
            super();
            this.address = address;
        }
    }

    /** Bytes an argument takes: 8 for a tensor, a Long or null (a pointer or a 64-bit integer), 4 for Integer and Float. */
    static int size(Object a) {
        if (a == null || a instanceof CudaTensor || a instanceof Long) return 8;
        if (a instanceof Integer || a instanceof Float) return 4;
        throw new IllegalArgumentException("unsupported kernel argument type " + a.getClass().getSimpleName());
    }

    /**
     * Launches grid x block threads. Arguments: {@link CudaTensor} or {@link Long} (a pointer or a 64-bit integer),
     * {@link Integer}, {@link Float}, null (a null pointer), each of the size the kernel's parameter has.
     */
    synchronized void launch(int grid, int block, int sharedBytes, Object... args) {
        if (grid == 0) return;
        int[] want = fn.paramSizes();   // null only where the driver cannot tell (before 12.4)
        if (want != null && args.length != want.length) {
            throw new IllegalArgumentException("kernel " + name + " takes " + want.length + " arguments, launched with " + args.length);
        }
        if (args.length > MAX_ARGS) throw new IllegalArgumentException("kernel " + name + ": more than " + MAX_ARGS + " arguments");
        for (int i = 0; i < args.length; i++) {
            int got = size(args[i]);
            if (want != null && got != want[i]) {
                throw new IllegalArgumentException("kernel " + name + " argument " + i + " is " + want[i] + " bytes, given a "
                        + got + "-byte " + (args[i] == null ? "null pointer" : args[i].getClass().getSimpleName()));
            }
        }
        if (block <= 0 || (fn.maxThreadsPerBlock() > 0 && block > fn.maxThreadsPerBlock())) {
            throw new IllegalArgumentException("kernel " + name + " launched with " + block + " threads per block; it allows at most "
                    + fn.maxThreadsPerBlock());
        }
        for (int i = 0; i < args.length; i++) {
            Object a = args[i];
            long cell;
            if (a == null) cell = 0L;
            else if (a instanceof CudaTensor t) cell = t.ptr();
            else if (a instanceof Long l) cell = l;
            else if (a instanceof Integer n) cell = n & 0xffffffffL;                        // little-endian: low 4 bytes
            else cell = Float.floatToRawIntBits((Float) a) & 0xffffffffL;
            cells.put(i, cell);
        }
        device.launch(fn, grid, block, sharedBytes, params);
        if (SYNC) device.synchronize(name);
    }
}
