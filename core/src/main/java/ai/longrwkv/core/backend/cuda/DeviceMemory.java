package ai.longrwkv.core.backend.cuda;

import java.util.ArrayDeque;
import java.util.HashMap;
import java.util.Map;
import java.util.function.BooleanSupplier;

/**
 * Device memory for one backend with a reuse pool: every chunk allocates the same shapes, and cuMemAlloc/cuMemFree
 * synchronise the device. A freed buffer goes to the pool; it can be handed out again at once because all work runs
 * in order on one stream. Out of memory (for tensors and, through {@link #retryAfterTrim}, for library workspaces)
 * first returns the pool to the device and retries.
 */
final class DeviceMemory {
    private final Device device;
    private final String deviceName;
    private final long granularity;
    private final Map<Long, ArrayDeque<Long>> pool = new HashMap<>();
    private long pooledBytes, allocatedBytes;
    private boolean closed;

    DeviceMemory(Device device, String deviceName) {
        this.device = device;
        this.deviceName = deviceName;
        this.granularity = device.allocationGranularity();
    }

    /** Sizes are rounded up to the device's granularity so that nearby sizes share pool entries. */
    private long rounded(long bytes) {
        long g = granularity;
        return Math.max(g, (bytes + g - 1) / g * g);
    }

    synchronized long alloc(long bytes) {
        if (closed) throw new IllegalStateException("CUDA backend used after close()");
        long size = rounded(bytes);
        ArrayDeque<Long> q = pool.get(size);
        if (q != null && !q.isEmpty()) {
            pooledBytes -= size;
            return q.pop();
        }
        long p = device.malloc(size);
        if (p == 0 && pooledBytes > 0) {
            trimPool();                          // pooled buffers of other sizes may make room
            p = device.malloc(size);
        }
        if (p == 0) {
            throw new IllegalStateException("CUDA out of memory allocating " + size + " bytes on " + deviceName
                    + " (" + allocatedBytes + " bytes allocated by this backend)");
        }
        allocatedBytes += size;
        return p;
    }

    synchronized void free(long ptr, long bytes) {
        if (closed) return;
        long size = rounded(bytes);
        pool.computeIfAbsent(size, k -> new ArrayDeque<>()).push(ptr);
        pooledBytes += size;
    }

    synchronized long pooledBytes() { return pooledBytes; }

    /** Device bytes obtained from the device and not yet returned (open tensors + pool). */
    synchronized long allocatedBytes() { return allocatedBytes; }

    /**
     * Returns the pool's memory to the device. Waits first: a kernel queued before a tensor was closed may still read
     * the buffer. A failing free is an error (a corrupted pointer or a sticky device error), not something to ignore.
     */
    synchronized void trimPool() {
        if (pool.isEmpty()) return;
        device.synchronize("freeing the memory pool");
        for (Map.Entry<Long, ArrayDeque<Long>> e : pool.entrySet()) {
            while (!e.getValue().isEmpty()) {
                long p = e.getValue().pop();
                device.free(p);
                allocatedBytes -= e.getKey();
                pooledBytes -= e.getKey();
            }
        }
        pool.clear();
    }

    /**
     * Runs a library call that allocates its own workspace (cuBLAS): when it reports an allocation failure, returns
     * the pool to the device and tries once more.
     */
    boolean retryAfterTrim(BooleanSupplier call) {
        if (call.getAsBoolean()) return true;
        if (pooledBytes() == 0) return false;
        trimPool();
        return call.getAsBoolean();
    }

    synchronized void close() {
        if (closed) return;
        trimPool();
        closed = true;
    }
}
