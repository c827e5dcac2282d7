package ai.longrwkv.datasets.build;

import ai.longrwkv.datasets.io.ByteList;
import ai.longrwkv.datasets.io.IntList;

import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Path;
import java.util.function.LongSupplier;

/**
 * Cuts a jsonl stream into batches of whole lines (about `batchBytes` each) that workers can parse independently.
 * Lines end at \n; a \r before it is dropped, as is a UTF-8 byte order mark at the start of the file. A line may be
 * longer than a batch: a batch always holds at least one line.
 */
final class LineBatcher {
    /** Lines [i] = data[ends[i-1], ends[i]) (ends[-1] = 0); the first is line firstLine of the file. */
    record Batch(Path file, long firstLine, byte[] data, int[] ends, long inputBytes) {
        int lines() {
            return ends.length;
        }

        int start(int i) {
            return i == 0 ? 0 : ends[i - 1];
        }
    }

    private final Path file;
    private final InputStream in;
    private final int batchBytes;
    /** Bytes of the underlying file consumed so far (compressed bytes for .gz), for progress. */
    private final LongSupplier consumed;
    private final byte[] readBuffer = new byte[1 << 16];
    private int readPos, readEnd;
    private boolean eof;
    private boolean atFileStart = true;
    private long nextLine = 1;
    private long consumedReported;

    /** Lines longer than this (bytes, without the line end) are not held: {@link #oversized} gets their number. */
    private final long maxLineBytes;
    private final java.util.function.LongConsumer oversized;

    LineBatcher(Path file, InputStream in, int batchBytes, LongSupplier consumed) {
        this(file, in, batchBytes, consumed, Long.MAX_VALUE, line -> { });
    }

    /**
     * oversized: called with the line number of each line longer than maxLineBytes; it may throw (the build stops)
     * or return (the line is skipped, read to its end without being kept).
     */
    LineBatcher(Path file, InputStream in, int batchBytes, LongSupplier consumed, long maxLineBytes, java.util.function.LongConsumer oversized) {
        this.file = file;
        this.in = in;
        this.batchBytes = batchBytes;
        this.consumed = consumed;
        this.maxLineBytes = maxLineBytes;
        this.oversized = oversized;
    }

    /** The next batch, or null at the end of the stream. */
    Batch next() throws IOException {
        ByteList data = new ByteList(Math.min(batchBytes + 4096, 1 << 22));
        IntList ends = new IntList(1024);
        long firstLine = nextLine;
        while (data.size() < batchBytes) {
            int r = readLine(data);
            if (r == EOF) break;
            if (r == SKIPPED) {
                oversized.accept(nextLine++);
                continue;
            }
            ends.add(data.size());
            nextLine++;
        }
        if (ends.size() == 0) return null;
        long now = consumed.getAsLong();
        long bytes = now - consumedReported;
        consumedReported = now;
        return new Batch(file, firstLine, data.toArray(), ends.toArray(), bytes);
    }

    private static final int EOF = -1, READ = 0, SKIPPED = 1;

    /** Appends one line (without its end) to data: READ; EOF if the stream had no more bytes; SKIPPED for a line over the bound. */
    private int readLine(ByteList data) throws IOException {
        int lineStart = data.size();
        boolean any = false, tooLong = false;
        while (true) {
            if (readPos == readEnd) {
                if (eof || !fill()) {
                    if (!any) return EOF;
                    break;
                }
            }
            any = true;
            int nl = -1;
            for (int i = readPos; i < readEnd; i++) {
                if (readBuffer[i] == '\n') {
                    nl = i;
                    break;
                }
            }
            int end = nl < 0 ? readEnd : nl;
            if (!tooLong && (long) data.size() - lineStart + (end - readPos) > maxLineBytes + 1) {
                tooLong = true;   // stop keeping it; read on to its end
                data.truncate(lineStart);
            }
            if (!tooLong) data.addAll(readBuffer, readPos, end);
            readPos = nl < 0 ? readEnd : nl + 1;
            if (nl >= 0) break;
        }
        if (tooLong) {
            atFileStart = false;
            return SKIPPED;
        }
        int size = data.size();
        if (size > lineStart && data.get(size - 1) == '\r') trimTo(data, size - 1);
        if (atFileStart) {
            atFileStart = false;
            byte[] a = data.array();
            if (data.size() - lineStart >= 3 && (a[lineStart] & 0xff) == 0xef && (a[lineStart + 1] & 0xff) == 0xbb && (a[lineStart + 2] & 0xff) == 0xbf) {
                System.arraycopy(a, lineStart + 3, a, lineStart, data.size() - lineStart - 3);
                trimTo(data, data.size() - 3);
            }
        }
        if (data.size() - lineStart > maxLineBytes) {   // exactly at the bound plus a \r or a byte order mark
            data.truncate(lineStart);
            return SKIPPED;
        }
        return READ;
    }

    private static void trimTo(ByteList data, int size) {
        data.truncate(size);
    }

    private boolean fill() throws IOException {
        int n = in.read(readBuffer);
        if (n < 0) {
            eof = true;
            return false;
        }
        readPos = 0;
        readEnd = n;
        return true;
    }
}
