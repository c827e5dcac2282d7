package ai.longrwkv.core.backend.cuda;

import org.bytedeco.cuda.cudart.CUctx_st;
import org.bytedeco.javacpp.BytePointer;
import org.bytedeco.javacpp.FloatPointer;
import org.bytedeco.javacpp.IntPointer;
import org.bytedeco.javacpp.LongPointer;
import org.bytedeco.javacpp.Pointer;
import org.bytedeco.javacpp.PointerPointer;
import org.bytedeco.javacpp.SizeTPointer;

import java.util.ArrayDeque;
import java.util.HashMap;
import java.util.Map;

import static org.bytedeco.cuda.global.cudart.*;

/**
 * One CUDA device through the driver API: its primary context (made current on every Java thread that calls in),
 * status checks, and device memory with a reuse pool. Device pointers are plain {@code long}s.
 *
 * <p>Only this package touches {@code org.bytedeco.cuda}; everything outside reaches it through
 * {@link ai.longrwkv.core.backend.Backends}, so machines without a driver never load these classes.
 */
final class CudaContext implements AutoCloseable {
    final int device;
    final int ccMajor, ccMinor, smCount;
    final String deviceName;
    final int driverVersion;
    final long totalMemory;
    private final CUctx_st ctx = new CUctx_st();
    /** The context must be current on each calling thread; this remembers the threads where it already is. */
    private final ThreadLocal<Boolean> current = ThreadLocal.withInitial(() -> false);

    /** Freed device buffers by byte size: every chunk allocates the same shapes, and cuMemAlloc/cuMemFree synchronise. */
    private final Map<Long, ArrayDeque<Long>> pool = new HashMap<>();
    private long pooledBytes, allocatedBytes;
    private boolean closed;

    CudaContext(int ordinal) {
        check(cuInit(0), "cuInit");
        int[] count = new int[1];
        check(cuDeviceGetCount(count), "cuDeviceGetCount");
        if (count[0] <= ordinal) {
            throw new IllegalStateException(count[0] == 0 ? "the NVIDIA driver reports no CUDA device"
                    : "CUDA device " + ordinal + " requested but only " + count[0] + " present");
        }
        int[] dev = new int[1];
        check(cuDeviceGet(dev, ordinal), "cuDeviceGet");
        device = dev[0];
        ccMajor = attribute(CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR);
        ccMinor = attribute(CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR);
        smCount = attribute(CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT);
        byte[] name = new byte[256];
        check(cuDeviceGetName(name, name.length, device), "cuDeviceGetName");
        int len = 0;
        while (len < name.length && name[len] != 0) len++;
        deviceName = new String(name, 0, len, java.nio.charset.StandardCharsets.UTF_8);
        int[] ver = new int[1];
        check(cuDriverGetVersion(ver), "cuDriverGetVersion");
        driverVersion = ver[0];
        try (SizeTPointer total = new SizeTPointer(1)) {
            check(cuDeviceTotalMem(total, device), "cuDeviceTotalMem");
            totalMemory = total.get();
        }
        // The primary context: CUDA 13 changed cuCtxCreate's signature, the primary context API did not.
        check(cuDevicePrimaryCtxRetain(ctx, device), "cuDevicePrimaryCtxRetain");
        makeCurrent();
    }

    private int attribute(int attr) {
        int[] v = new int[1];
        check(cuDeviceGetAttribute(v, attr, device), "cuDeviceGetAttribute(" + attr + ")");
        return v[0];
    }

    /** Makes the context current on the calling thread (once per thread): without it calls fail or read zeros. */
    void makeCurrent() {
        if (!current.get()) {
            check(cuCtxSetCurrent(ctx), "cuCtxSetCurrent");
            current.set(true);
        }
    }

    String arch() { return "sm_" + ccMajor + ccMinor; }

    // ---------------------------------------------------------------- errors
    static void check(int status, String what) {
        if (status != CUDA_SUCCESS) throw new IllegalStateException(what + " failed: " + errorName(status));
    }

    static String errorName(int status) {
        try (PointerPointer<BytePointer> name = new PointerPointer<>(1)) {
            if (cuGetErrorName(status, name) == CUDA_SUCCESS && name.get(0) != null) {
                return name.getString(0) + " (" + status + ")";
            }
        } catch (RuntimeException | LinkageError ignored) {
            // fall through to the number
        }
        return "CUDA error " + status;
    }

    /** Waits for all queued work; surfaces errors of asynchronous kernel launches. */
    void synchronize(String after) {
        check(cuCtxSynchronize(), "cuCtxSynchronize after " + after);
    }

    // ---------------------------------------------------------------- memory
    /** Allocation granularity: sizes are rounded up so that nearby sizes share pool entries. */
    private static long rounded(long bytes) { return Math.max(256, (bytes + 255) & ~255L); }

    synchronized long alloc(long bytes) {
        if (closed) throw new IllegalStateException("CUDA backend used after close()");
        long size = rounded(bytes);
        ArrayDeque<Long> q = pool.get(size);
        if (q != null && !q.isEmpty()) {
            pooledBytes -= size;
            return q.pop();
        }
        try (LongPointer p = new LongPointer(1)) {
            int st = cuMemAlloc(p, size);
            if (st == CUDA_ERROR_OUT_OF_MEMORY && pooledBytes > 0) {
                trimPool();                          // pooled buffers of other sizes may make room
                st = cuMemAlloc(p, size);
            }
            if (st == CUDA_ERROR_OUT_OF_MEMORY) {
                throw new IllegalStateException("CUDA out of memory allocating " + size + " bytes on " + deviceName
                        + " (" + allocatedBytes + " bytes allocated by this backend)");
            }
            check(st, "cuMemAlloc(" + size + ")");
            allocatedBytes += size;
            return p.get();
        }
    }

    synchronized void free(long ptr, long bytes) {
        if (closed) return;
        long size = rounded(bytes);
        pool.computeIfAbsent(size, k -> new ArrayDeque<>()).push(ptr);
        pooledBytes += size;
    }

    synchronized long pooledBytes() { return pooledBytes; }

    /** Device bytes obtained from cuMemAlloc and not yet returned to the driver (open tensors + pool). */
    synchronized long allocatedBytes() { return allocatedBytes; }

    synchronized void trimPool() {
        makeCurrent();
        for (Map.Entry<Long, ArrayDeque<Long>> e : pool.entrySet()) {
            for (long p : e.getValue()) {
                cuMemFree(p);
                allocatedBytes -= e.getKey();
            }
        }
        pool.clear();
        pooledBytes = 0;
    }

    void upload(float[] src, int offset, int count, long dst) {
        if (count == 0) return;
        makeCurrent();
        try (FloatPointer h = new FloatPointer(count)) {
            h.put(src, offset, count);
            check(cuMemcpyHtoD(dst, h, count * 4L), "cuMemcpyHtoD");
        }
    }

    void upload(int[] src, long dst) {
        if (src.length == 0) return;
        makeCurrent();
        try (IntPointer h = new IntPointer(src)) {
            check(cuMemcpyHtoD(dst, h, src.length * 4L), "cuMemcpyHtoD");
        }
    }

    void download(long src, float[] dst, int offset, int count) {
        if (count == 0) return;
        makeCurrent();
        try (FloatPointer h = new FloatPointer(count)) {
            check(cuMemcpyDtoH(h, src, count * 4L), "cuMemcpyDtoH");
            h.get(dst, offset, count);
        }
    }

    double[] downloadDoubles(long src, int count) {
        double[] out = new double[count];
        if (count == 0) return out;
        makeCurrent();
        try (org.bytedeco.javacpp.DoublePointer h = new org.bytedeco.javacpp.DoublePointer(count)) {
            check(cuMemcpyDtoH(h, src, count * 8L), "cuMemcpyDtoH");
            h.get(out);
        }
        return out;
    }

    void copy(long src, long dst, long bytes) {
        if (bytes == 0) return;
        makeCurrent();
        check(cuMemcpyDtoD(dst, src, bytes), "cuMemcpyDtoD");
    }

    void zero(long dst, long floats) {
        if (floats == 0) return;
        makeCurrent();
        check(cuMemsetD32(dst, 0, floats), "cuMemsetD32");
    }

    /** A JavaCPP pointer object that holds a device address, for APIs (cuBLAS) that take typed pointers. */
    static final class DeviceFloats extends FloatPointer {
        DeviceFloats(long deviceAddress) {
            super();
            this.address = deviceAddress;
        }
    }

    /** A pointer to an arbitrary host address (a cell inside a kernel-parameter block). */
    static final class Address extends Pointer {
        Address(long address) {
            super();
            this.address = address;
        }
    }

    @Override
    public synchronized void close() {
        if (closed) return;
        trimPool();
        closed = true;
        // The primary context is kept: other backends in this process may share it, and the driver frees it at exit.
    }
}
