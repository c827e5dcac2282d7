package ai.longrwkv.core.backend.cpu;

import ai.longrwkv.core.backend.Tensor;
import ai.longrwkv.core.tensor.DType;
import ai.longrwkv.core.tensor.HostTensor;
import org.bytedeco.javacpp.FloatPointer;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.FloatBuffer;
import java.nio.ShortBuffer;

/**
 * CPU tensor in native (off-heap) memory. Off-heap because OpenBLAS must see the data without a copy: passing Java
 * arrays through JNI copies them on every call, which measured 4x slower for a 1024x768x768 sgemm on this machine.
 * Java loops reach the same memory through a direct {@link FloatBuffer} (fp32) or {@link ShortBuffer} (bf16 bits).
 *
 * <p>Memory comes from the backend's pool in float-sized units whatever the dtype (a bf16 tensor of n elements takes
 * ceil(n / 2) floats), so one pool serves both. A view ({@link #view}) points into its parent and owns nothing.
 */
final class CpuTensor implements Tensor {
    private final int[] shape;
    private final long size;
    private final DType dtype;
    private final CpuBackend owner;
    /** The pooled allocation this tensor owns; null for a view. */
    private FloatPointer owned;
    /** The parent of a view (kept so that a view of a closed tensor is caught); null for an owner. */
    private final CpuTensor parent;
    private FloatPointer pointer;
    /** Where this tensor's elements start in its owner's allocation (0 for an owner), in bytes. */
    private final long byteOffset;
    private FloatBuffer buf;
    /** The same fp32 data as bytes in native order (Vector API loads and stores straight from native memory). */
    private ByteBuffer direct;
    private ShortBuffer bf16;

    CpuTensor(CpuBackend owner, DType dtype, int[] shape) {
        this(owner, dtype, shape, true);
    }

    /** A new tensor; its memory is cleared when {@code zero}, else left as the pool had it ({@link CpuBackend#empty}). */
    CpuTensor(CpuBackend owner, DType dtype, int[] shape, boolean zero) {
        long n = HostTensor.numel(shape);
        if (n * dtype.bytes() > Integer.MAX_VALUE) {
            throw new IllegalArgumentException("tensor " + HostTensor.shapeString(shape) + " " + dtype.label()
                    + " exceeds 2 GiB, the CPU backend's limit per tensor");
        }
        this.owner = owner;
        this.shape = shape.clone();
        this.size = n;
        this.dtype = dtype;
        this.parent = null;
        this.byteOffset = 0;
        long floats = Math.max((n * dtype.bytes() + 3) / 4, 1);
        this.owned = owner.acquire(floats);
        if (zero) Blocks.zero(owned, floats);
        bind(owned);
        owner.track(bytes());
    }

    /** A view of {@code count} elements of parent from element {@code offset}, with the given shape. */
    private CpuTensor(CpuTensor parent, long offset, int[] shape) {
        this.owner = parent.owner;
        this.shape = shape.clone();
        this.size = HostTensor.numel(shape);
        this.dtype = parent.dtype;
        this.parent = parent;
        this.byteOffset = parent.byteOffset + offset * dtype.bytes();
        if (dtype == DType.F32) {
            bind(parent.ptr().getPointer(offset));
        } else {
            // a bf16 view may start mid-float: address it through the parent's 16-bit buffer only
            this.pointer = null;
            this.bf16 = parent.bf16().slice((int) offset, (int) size);
        }
    }

    private void bind(FloatPointer p) {
        this.pointer = p;
        long bytes = Math.max(size * dtype.bytes(), 1);
        p.capacity((bytes + 3) / 4).limit((bytes + 3) / 4);
        if (dtype == DType.F32) {
            this.direct = p.asByteBuffer().order(ByteOrder.nativeOrder());
            this.buf = direct.asFloatBuffer();
        } else {
            this.bf16 = p.asByteBuffer().order(ByteOrder.nativeOrder()).asShortBuffer();
        }
    }

    CpuTensor view(long offset, int[] viewShape) {
        return new CpuTensor(this, offset, viewShape);
    }

    @Override public int[] shape() { return shape.clone(); }
    @Override public long size() { return size; }
    @Override public DType dtype() { return dtype; }

    private void checkOpen() {
        if (closed()) throw new IllegalStateException("tensor " + describe() + " used after close()");
    }

    private boolean closed() {
        return parent != null ? parent.closed() : owned == null;
    }

    /** The float32 data; any other dtype is an op that does not take it. */
    FloatBuffer buf() {
        checkOpen();
        if (dtype != DType.F32) throw wrongDtype();
        return buf;
    }

    /**
     * The float32 data as a native-order byte buffer (element i at byte 4 i): for loops that load and store vectors
     * straight from native memory, which on a 2-core machine measured faster than a block copy into arrays where the
     * data comes from DRAM (AdamW over 50M floats: 1.7 against 2.4 ns per element on one thread).
     */
    ByteBuffer direct() {
        checkOpen();
        if (dtype != DType.F32) throw wrongDtype();
        return direct;
    }

    FloatPointer ptr() {
        checkOpen();
        if (dtype != DType.F32) throw wrongDtype();
        return pointer;
    }

    /** The bf16 bits (bf16 tensors only). */
    ShortBuffer bf16() {
        checkOpen();
        if (dtype != DType.BF16) throw new IllegalArgumentException("expected a bf16 tensor, got " + describe());
        return bf16;
    }

    /**
     * The first element's address, whatever the dtype (a bf16 view may start mid-float, so this is a byte pointer into
     * the owner's allocation), for native code that takes raw data (oneDNN).
     */
    org.bytedeco.javacpp.BytePointer data() {
        checkOpen();
        CpuTensor owner = this;
        while (owner.parent != null) owner = owner.parent;
        long bytes = owner.owned.capacity() * 4L;
        return new org.bytedeco.javacpp.BytePointer(owner.owned).capacity(bytes).limit(bytes).position(byteOffset);
    }

    private IllegalArgumentException wrongDtype() {
        String op = ai.longrwkv.core.backend.OpNames.callerOp(CpuBackend.class);
        return new IllegalArgumentException(op + " takes fp32 tensors, got " + describe());
    }

    @Override
    public void close() {
        if (owned != null) {
            owner.release(owned);
            owned = null;
            pointer = null;
            buf = null;
            direct = null;
            bf16 = null;
            owner.track(-bytes());
        }
    }

    @Override
    public String toString() {
        return "CpuTensor" + describe();
    }
}
