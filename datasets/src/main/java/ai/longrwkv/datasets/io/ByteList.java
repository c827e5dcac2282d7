package ai.longrwkv.datasets.io;

import java.util.Arrays;

/** A growable byte array (loss-mask flags, line bytes). */
public final class ByteList {
    private byte[] data;
    private int size;

    public ByteList() {
        this(16);
    }

    public ByteList(int capacity) {
        data = new byte[Math.max(1, capacity)];
    }

    public void add(byte v) {
        if (size == data.length) grow(size + 1);
        data[size++] = v;
    }

    /** Appends `count` copies of v. */
    public void fill(byte v, int count) {
        if (size + count > data.length) grow(size + count);
        Arrays.fill(data, size, size + count, v);
        size += count;
    }

    public void addAll(byte[] values, int from, int to) {
        int n = to - from;
        if (size + n > data.length) grow(size + n);
        System.arraycopy(values, from, data, size, n);
        size += n;
    }

    public byte get(int i) {
        if (i >= size) throw new IndexOutOfBoundsException(i + " of " + size);
        return data[i];
    }

    public int size() {
        return size;
    }

    public void clear() {
        size = 0;
    }

    /** Drops the values from `newSize` on. */
    public void truncate(int newSize) {
        if (newSize < 0 || newSize > size) throw new IndexOutOfBoundsException(newSize + " of " + size);
        size = newSize;
    }

    /** The backing array; valid up to size(). */
    public byte[] array() {
        return data;
    }

    public byte[] toArray() {
        return Arrays.copyOf(data, size);
    }

    private void grow(int min) {
        long n = Math.max(min, (long) data.length * 2);
        if (n > Integer.MAX_VALUE - 8) n = Integer.MAX_VALUE - 8;
        if (n < min) throw new IllegalStateException("more than " + (Integer.MAX_VALUE - 8) + " bytes in one list");
        data = Arrays.copyOf(data, (int) n);
    }
}
