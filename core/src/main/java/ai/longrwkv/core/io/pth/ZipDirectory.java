package ai.longrwkv.core.io.pth;

import ai.longrwkv.core.io.ModelFormatException;

import java.io.EOFException;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * The central directory of a zip file (PKWARE APPNOTE): which records exist, their sizes and CRCs. Only what
 * torch.save produces is accepted: one disk, no encryption; zip64 sizes and offsets are understood, so archives over
 * 4 GB work. Where a record's bytes start is found by {@link #dataOffset}, which reads the record's local header.
 * Every size and offset is checked against the file size before anything is allocated or mapped.
 */
final class ZipDirectory {
    private static final int EOCD_SIGNATURE = 0x06054b50;
    private static final int ZIP64_EOCD_SIGNATURE = 0x06064b50;
    private static final int ZIP64_LOCATOR_SIGNATURE = 0x07064b50;
    private static final int CENTRAL_SIGNATURE = 0x02014b50;
    private static final int LOCAL_SIGNATURE = 0x04034b50;
    private static final int EOCD_BYTES = 22;
    private static final int ZIP64_LOCATOR_BYTES = 20;
    private static final int ZIP64_EOCD_BYTES = 56;
    private static final int CENTRAL_BYTES = 46;
    private static final int LOCAL_BYTES = 30;
    private static final int MAX_COMMENT = 0xffff;
    private static final int ZIP64_EXTRA_ID = 0x0001;
    /** A state dict of even 100k tensors has a central directory of a few MB; more than this means a corrupt file. */
    private static final long MAX_CENTRAL_DIRECTORY_BYTES = 64L << 20;

    /** One file in the archive, as the central directory describes it. */
    record Record(String name, long localHeaderOffset, long compressedSize, long size, int crc32, int method, int flags) {}

    private final FileChannel channel;
    private final String fileName;
    private final long fileSize;
    private final long centralDirectoryOffset;
    private final Map<String, Record> records;

    private ZipDirectory(FileChannel channel, String fileName, long fileSize, long centralDirectoryOffset,
                         Map<String, Record> records) {
        this.channel = channel;
        this.fileName = fileName;
        this.fileSize = fileSize;
        this.centralDirectoryOffset = centralDirectoryOffset;
        this.records = records;
    }

    /** Reads the central directory; records keep their order in the archive. */
    static ZipDirectory read(FileChannel channel, String fileName) throws IOException {
        long size = channel.size();
        if (size < EOCD_BYTES) {
            throw new ModelFormatException(fileName + ": file is " + size + " bytes, too short for a zip archive (truncated?)");
        }
        int tailLength = (int) Math.min(size, EOCD_BYTES + MAX_COMMENT);
        ByteBuffer tail = readAt(channel, size - tailLength, tailLength);
        int eocdInTail = findEndRecord(tail);
        if (eocdInTail < 0) {
            throw new ModelFormatException(fileName + ": no zip end-of-central-directory record in the last " + tailLength
                    + " bytes; the file is truncated or not a zip archive");
        }
        long eocdOffset = size - tailLength + eocdInTail;
        int diskNumber = tail.getShort(eocdInTail + 4) & 0xffff;
        int centralDisk = tail.getShort(eocdInTail + 6) & 0xffff;
        long entryCount = tail.getShort(eocdInTail + 10) & 0xffff;
        long centralSize = tail.getInt(eocdInTail + 12) & 0xffffffffL;
        long centralOffset = tail.getInt(eocdInTail + 16) & 0xffffffffL;
        long centralEnd = eocdOffset;

        // zip64: a locator just before the end record points at the zip64 end record with 64-bit counts and offsets
        if (eocdOffset >= ZIP64_LOCATOR_BYTES) {
            ByteBuffer locator = readAt(channel, eocdOffset - ZIP64_LOCATOR_BYTES, ZIP64_LOCATOR_BYTES);
            if (locator.getInt(0) == ZIP64_LOCATOR_SIGNATURE) {
                long zip64EndOffset = locator.getLong(8);
                if (zip64EndOffset < 0 || zip64EndOffset > eocdOffset - ZIP64_LOCATOR_BYTES - ZIP64_EOCD_BYTES) {
                    throw new ModelFormatException(fileName + ": zip64 locator points at byte offset " + Long.toUnsignedString(zip64EndOffset)
                            + ", outside the file; corrupt or truncated zip archive");
                }
                ByteBuffer z = readAt(channel, zip64EndOffset, ZIP64_EOCD_BYTES);
                if (z.getInt(0) != ZIP64_EOCD_SIGNATURE) {
                    throw new ModelFormatException(fileName + ": no zip64 end-of-central-directory record at byte offset "
                            + zip64EndOffset + " where the zip64 locator points; corrupt zip archive");
                }
                diskNumber = z.getInt(16);
                centralDisk = z.getInt(20);
                entryCount = z.getLong(32);
                centralSize = z.getLong(40);
                centralOffset = z.getLong(48);
                centralEnd = zip64EndOffset;
            }
        }
        if (diskNumber != 0 || centralDisk != 0) {
            throw new ModelFormatException(fileName + ": multi-disk (split) zip archives are not supported");
        }
        if (centralOffset < 0 || centralSize < 0 || centralOffset > centralEnd || centralSize > centralEnd - centralOffset) {
            throw new ModelFormatException(fileName + ": zip central directory (offset " + Long.toUnsignedString(centralOffset) + ", "
                    + Long.toUnsignedString(centralSize) + " bytes) does not lie inside the file (" + size + " bytes); truncated or corrupt");
        }
        if (centralSize > MAX_CENTRAL_DIRECTORY_BYTES) {
            throw new ModelFormatException(fileName + ": zip central directory of " + centralSize + " bytes exceeds the "
                    + MAX_CENTRAL_DIRECTORY_BYTES + "-byte limit; corrupt file?");
        }
        if (entryCount < 0 || entryCount > centralSize / CENTRAL_BYTES) {
            throw new ModelFormatException(fileName + ": zip end record declares " + Long.toUnsignedString(entryCount)
                    + " entries but the central directory has room for at most " + centralSize / CENTRAL_BYTES + "; corrupt file");
        }
        ByteBuffer central = readAt(channel, centralOffset, (int) centralSize);
        Map<String, Record> records = new LinkedHashMap<>();
        for (long i = 0; i < entryCount; i++) {
            Record r = parseCentralEntry(central, fileName, centralOffset, i);
            if (records.putIfAbsent(r.name, r) != null) {
                throw new ModelFormatException(fileName + ": zip archive has two entries named '" + StateDictUnpickler.printable(r.name)
                        + "'; corrupt or tampered file");
            }
        }
        return new ZipDirectory(channel, fileName, size, centralOffset, Collections.unmodifiableMap(records));
    }

    /** The last end-of-central-directory signature whose record fits in the tail, or -1. */
    private static int findEndRecord(ByteBuffer tail) {
        for (int p = tail.limit() - EOCD_BYTES; p >= 0; p--) {
            if (tail.getInt(p) == EOCD_SIGNATURE) {
                int commentLength = tail.getShort(p + 20) & 0xffff;
                if (p + EOCD_BYTES + commentLength <= tail.limit()) return p;
            }
        }
        return -1;
    }

    private static Record parseCentralEntry(ByteBuffer central, String fileName, long centralOffset, long index) {
        int p = central.position();
        String where = fileName + ": zip central directory entry " + index + " (byte offset " + (centralOffset + p) + ")";
        if (central.remaining() < CENTRAL_BYTES || central.getInt(p) != CENTRAL_SIGNATURE) {
            throw new ModelFormatException(where + ": bad or missing entry signature; corrupt zip archive");
        }
        int flags = central.getShort(p + 8) & 0xffff;
        int method = central.getShort(p + 10) & 0xffff;
        int crc = central.getInt(p + 16);
        long compressedSize = central.getInt(p + 20) & 0xffffffffL;
        long size = central.getInt(p + 24) & 0xffffffffL;
        int nameLength = central.getShort(p + 28) & 0xffff;
        int extraLength = central.getShort(p + 30) & 0xffff;
        int commentLength = central.getShort(p + 32) & 0xffff;
        int diskStart = central.getShort(p + 34) & 0xffff;
        long localOffset = central.getInt(p + 42) & 0xffffffffL;
        if (central.remaining() < CENTRAL_BYTES + nameLength + extraLength + commentLength) {
            throw new ModelFormatException(where + ": name, extra field and comment run past the end of the central directory");
        }
        byte[] nameBytes = new byte[nameLength];
        central.get(p + CENTRAL_BYTES, nameBytes);
        String name = new String(nameBytes, StandardCharsets.UTF_8);
        where = fileName + ": zip entry '" + StateDictUnpickler.printable(name) + "'";

        // zip64 extended information: 64-bit values for exactly those fields that hold 0xffffffff (0xffff for the disk)
        int extraStart = p + CENTRAL_BYTES + nameLength;
        int extraEnd = extraStart + extraLength;
        for (int e = extraStart; e + 4 <= extraEnd; ) {
            int id = central.getShort(e) & 0xffff;
            int length = central.getShort(e + 2) & 0xffff;
            if (e + 4 + length > extraEnd) {
                throw new ModelFormatException(where + ": extra field runs past its declared length; corrupt zip archive");
            }
            if (id == ZIP64_EXTRA_ID) {
                int q = e + 4;
                int end = q + length;
                if (size == 0xffffffffL) { size = zip64Value(central, q, end, where); q += 8; }
                if (compressedSize == 0xffffffffL) { compressedSize = zip64Value(central, q, end, where); q += 8; }
                if (localOffset == 0xffffffffL) { localOffset = zip64Value(central, q, end, where); q += 8; }
                if (diskStart == 0xffff) { diskStart = q + 4 <= end ? central.getInt(q) : -1; }
            }
            e += 4 + length;
        }
        if (diskStart != 0) throw new ModelFormatException(where + ": lies on another disk of a split archive; not supported");
        central.position(p + CENTRAL_BYTES + nameLength + extraLength + commentLength);
        return new Record(name, localOffset, compressedSize, size, crc, method, flags);
    }

    private static long zip64Value(ByteBuffer b, int at, int end, String where) {
        if (at + 8 > end) throw new ModelFormatException(where + ": zip64 extra field is too short; corrupt zip archive");
        long v = b.getLong(at);
        if (v < 0) throw new ModelFormatException(where + ": zip64 size or offset " + Long.toUnsignedString(v) + " is out of range");
        return v;
    }

    String fileName() { return fileName; }
    long fileSize() { return fileSize; }
    Map<String, Record> records() { return records; }
    Record find(String name) { return records.get(name); }

    /**
     * Where the record's bytes start, after checking that it is stored uncompressed and unencrypted and that all its
     * bytes lie inside the file, before the central directory.
     */
    long dataOffset(Record r) throws IOException {
        String where = fileName + ": zip entry '" + StateDictUnpickler.printable(r.name) + "'";
        if ((r.flags & 1) != 0) throw new ModelFormatException(where + " is encrypted; encrypted archives are not supported");
        if (r.method != 0) {
            throw new ModelFormatException(where + " is compressed (zip method " + r.method + (r.method == 8 ? ", deflate" : "")
                    + "); torch.save stores every record uncompressed, and compressed records are not supported");
        }
        if (r.compressedSize != r.size) {
            throw new ModelFormatException(where + " is stored uncompressed but its sizes differ (" + r.compressedSize + " vs "
                    + r.size + "); corrupt zip archive");
        }
        if (r.localHeaderOffset > centralDirectoryOffset - LOCAL_BYTES) {
            throw new ModelFormatException(where + ": local header offset " + r.localHeaderOffset + " is beyond the file data ("
                    + centralDirectoryOffset + " bytes before the central directory); truncated or corrupt");
        }
        ByteBuffer local = readAt(channel, r.localHeaderOffset, LOCAL_BYTES);
        if (local.getInt(0) != LOCAL_SIGNATURE) {
            throw new ModelFormatException(where + ": no local file header at byte offset " + r.localHeaderOffset + "; corrupt zip archive");
        }
        int nameLength = local.getShort(26) & 0xffff;
        int extraLength = local.getShort(28) & 0xffff;
        long start = r.localHeaderOffset + LOCAL_BYTES + nameLength + extraLength;
        if (start > centralDirectoryOffset || r.size > centralDirectoryOffset - start) {
            throw new ModelFormatException(where + " declares " + r.size + " bytes from byte offset " + start + " but the file holds only "
                    + Math.max(0, centralDirectoryOffset - start) + " bytes of data there; truncated or corrupt");
        }
        return start;
    }

    /** Reads exactly {@code length} bytes at {@code position} (the caller has checked they lie inside the file). */
    static ByteBuffer readAt(FileChannel channel, long position, int length) throws IOException {
        ByteBuffer buf = ByteBuffer.allocate(length).order(ByteOrder.LITTLE_ENDIAN);
        long pos = position;
        while (buf.hasRemaining()) {
            int n = channel.read(buf, pos);
            if (n < 0) throw new EOFException("unexpected end of file at byte offset " + pos);
            pos += n;
        }
        return buf.flip();
    }
}
