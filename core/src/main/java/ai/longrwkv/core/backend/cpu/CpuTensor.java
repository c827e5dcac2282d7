package ai.longrwkv.core.backend.cpu;

import ai.longrwkv.core.backend.Tensor;
import ai.longrwkv.core.tensor.HostTensor;
import org.bytedeco.javacpp.FloatPointer;
import org.bytedeco.javacpp.Pointer;

import java.nio.FloatBuffer;

/**
 * CPU tensor in native (off-heap) memory. Off-heap because OpenBLAS must see the data without a copy: passing Java
 * arrays through JNI copies them on every call, which measured 4x slower for a 1024x768x768 sgemm on this machine.
 * Java loops reach the same memory through a direct {@link FloatBuffer}.
 */
final class CpuTensor implements Tensor {
    private final int[] shape;
    private final long size;
    private final CpuBackend owner;
    FloatPointer pointer;
    FloatBuffer buf;

    CpuTensor(CpuBackend owner, int[] shape) {
        long n = HostTensor.numel(shape);
        if (n > Integer.MAX_VALUE / 4) {
            throw new IllegalArgumentException("tensor " + HostTensor.shapeString(shape) + " exceeds 2 GiB, the CPU backend's limit per tensor");
        }
        this.owner = owner;
        this.shape = shape.clone();
        this.size = n;
        this.pointer = owner.acquire(Math.max(n, 1));
        Pointer.memset(pointer, 0, Math.max(n, 1) * 4L);
        this.buf = pointer.asBuffer();
        owner.track(size * 4L);
    }

    @Override public int[] shape() { return shape.clone(); }
    @Override public long size() { return size; }

    FloatBuffer buf() {
        if (buf == null) throw new IllegalStateException("tensor " + shapeString() + " used after close()");
        return buf;
    }

    FloatPointer ptr() {
        if (pointer == null) throw new IllegalStateException("tensor " + shapeString() + " used after close()");
        return pointer;
    }

    @Override
    public void close() {
        if (pointer != null) {
            owner.release(pointer);
            pointer = null;
            buf = null;
            owner.track(-size * 4L);
        }
    }

    @Override
    public String toString() {
        return "CpuTensor" + shapeString();
    }
}
