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

    LineBatcher(Path file, InputStream in, int batchBytes, LongSupplier consumed) {
        this.file = file;
        this.in = in;
        this.batchBytes = batchBytes;
        this.consumed = consumed;
    }

    /** The next batch, or null at the end of the stream. */
    Batch next() throws IOException {
        ByteList data = new ByteList(Math.min(batchBytes + 4096, 1 << 22));
        IntList ends = new IntList(1024);
        long firstLine = nextLine;
        while (data.size() < batchBytes) {
            if (!readLine(data)) break;
            ends.add(data.size());
            nextLine++;
        }
        if (ends.size() == 0) return null;
        long now = consumed.getAsLong();
        long bytes = now - consumedReported;
        consumedReported = now;
        return new Batch(file, firstLine, data.toArray(), ends.toArray(), bytes);
    }

    /** Appends one line (without its end) to data; false if the stream had no more bytes. */
    private boolean readLine(ByteList data) throws IOException {
        int lineStart = data.size();
        boolean any = false;
        while (true) {
            if (readPos == readEnd) {
                if (eof || !fill()) {
                    if (!any) return false;
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
            if (nl < 0) {
                data.addAll(readBuffer, readPos, readEnd);
                readPos = readEnd;
            } else {
                data.addAll(readBuffer, readPos, nl);
                readPos = nl + 1;
                break;
            }
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
        return true;
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
