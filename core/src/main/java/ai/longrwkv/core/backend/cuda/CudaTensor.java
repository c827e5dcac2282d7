package ai.longrwkv.core.backend.cuda;

import ai.longrwkv.core.backend.Tensor;
import ai.longrwkv.core.tensor.DType;
import ai.longrwkv.core.tensor.HostTensor;

/**
 * A tensor in device memory owned by a {@link CudaBackend}, fp32 or bf16 (2 bytes per element: the allocation and
 * the backend's live bytes are the real byte count). close() returns the memory to the backend's pool.
 *
 * <p>A view ({@link #view}, what {@link CudaBackend#rows} makes) is a device address inside its parent's allocation:
 * it owns nothing, closing it frees nothing, and any use after the parent is closed fails here instead of reading
 * memory the pool may already have handed to another tensor.
 */
final class CudaTensor implements Tensor {
    private final CudaBackend owner;
    private final int[] shape;
    private final long size;
    private final DType dtype;
    /** The tensor that owns the allocation (itself for an owner), and this tensor's first byte in it. */
    private final CudaTensor root;
    private final long offsetBytes;
    /** The allocation's base address; 0 once closed (only meaningful on the root). */
    private long base;

    CudaTensor(CudaBackend owner, int[] shape) {
        this(owner, DType.F32, shape);
    }

    CudaTensor(CudaBackend owner, DType dtype, int[] shape) {
        this.owner = owner;
        this.shape = shape.clone();
        this.size = HostTensor.numel(shape);
        this.dtype = dtype;
        this.root = this;
        this.offsetBytes = 0;
        this.base = owner.memory.alloc(allocationBytes());
        owner.track(bytes());
    }

    private CudaTensor(CudaTensor parent, long offsetBytes, int[] shape) {
        this.owner = parent.owner;
        this.shape = shape.clone();
        this.size = HostTensor.numel(shape);
        this.dtype = parent.dtype;
        this.root = parent.root;
        this.offsetBytes = parent.offsetBytes + offsetBytes;
        this.base = 0;
    }

    /** A view of {@code shape} starting {@code firstElement} elements into this tensor; it must lie inside it. */
    CudaTensor view(long firstElement, int[] viewShape) {
        ptr();   // a view of a closed tensor fails now, not at its first use
        long n = HostTensor.numel(viewShape);
        if (firstElement < 0 || firstElement + n > size) {
            throw new IllegalArgumentException("a view of elements " + firstElement + ".." + (firstElement + n) + " of " + describe());
        }
        return new CudaTensor(this, firstElement * dtype.bytes(), viewShape);
    }

    private long allocationBytes() { return Math.max(bytes(), dtype.bytes()); }

    @Override public int[] shape() { return shape.clone(); }
    @Override public long size() { return size; }
    @Override public DType dtype() { return dtype; }

    boolean isView() { return root != this; }

    /** The backend whose memory holds this tensor. */
    CudaBackend owner() { return owner; }

    /** Device address of element 0. */
    long ptr() {
        if (root.base == 0) {
            throw new IllegalStateException("tensor " + describe() + (isView() ? " (a row view) used after its parent was closed"
                    : " used after close()"));
        }
        return root.base + offsetBytes;
    }

    /** Device address of element i. */
    long ptr(long element) { return ptr() + element * dtype.bytes(); }

    @Override
    public void close() {
        if (isView() || base == 0) return;
        owner.memory.free(base, allocationBytes());
        base = 0;
        owner.track(-bytes());
    }

    @Override
    public String toString() { return "CudaTensor" + describe() + (isView() ? " view" : ""); }
}
