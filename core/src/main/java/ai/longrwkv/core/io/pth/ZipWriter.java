package ai.longrwkv.core.io.pth;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.zip.CRC32;

/**
 * Writes a zip archive of stored (uncompressed) records the way torch.save lays them out: each record's data starts
 * on a 64-byte boundary (padding goes into an extra field with id "FB", as PyTorch's writer does, so that loaders can
 * map storages in place), and zip64 fields are used where sizes or offsets need them. Timestamps are fixed
 * (1980-01-01 00:00), so the bytes depend only on the records written.
 *
 * <p>A record's size must be known when it starts; its CRC-32 is computed while the data streams through and then
 * patched into the local header, so no data descriptors are needed and nothing is buffered.
 */
final class ZipWriter {
    static final int ALIGNMENT = 64;
    private static final int LOCAL_SIGNATURE = 0x04034b50;
    private static final int CENTRAL_SIGNATURE = 0x02014b50;
    private static final int EOCD_SIGNATURE = 0x06054b50;
    private static final int ZIP64_EOCD_SIGNATURE = 0x06064b50;
    private static final int ZIP64_LOCATOR_SIGNATURE = 0x07064b50;
    private static final int LOCAL_BYTES = 30;
    private static final long MAX32 = 0xffffffffL;
    private static final int MAX16 = 0xffff;
    private static final int VERSION_PLAIN = 20;
    private static final int VERSION_ZIP64 = 45;
    private static final int DOS_TIME = 0;
    /** MS-DOS date 1980-01-01, the earliest a zip can say; the same for every file written. */
    private static final int DOS_DATE = (1 << 5) | 1;
    private static final int PADDING_EXTRA_ID = 0x4246; // "FB" little-endian, as in PyTorch's archives
    private static final int ZIP64_EXTRA_ID = 0x0001;

    private record CentralEntry(byte[] name, long localOffset, long size, int crc) {}

    private final FileChannel channel;
    private final boolean forceZip64;
    private final List<CentralEntry> entries = new ArrayList<>();
    private final CRC32 crc = new CRC32();
    private long position;
    private byte[] currentName;
    private long currentLocalOffset;
    private long currentSize;
    private long currentWritten;

    /** @param forceZip64 write zip64 fields even where 32 bits would do (tests use it to exercise zip64 on small files) */
    ZipWriter(FileChannel channel, boolean forceZip64) throws IOException {
        this.channel = channel;
        this.forceZip64 = forceZip64;
        this.position = channel.position();
    }

    /** Starts a record of exactly {@code size} bytes; follow with {@link #write} calls and {@link #endRecord}. */
    void beginRecord(String name, long size) throws IOException {
        if (currentName != null) throw new IllegalStateException("record " + new String(currentName, StandardCharsets.UTF_8) + " is still open");
        byte[] nameBytes = name.getBytes(StandardCharsets.UTF_8);
        boolean zip64 = forceZip64 || size >= MAX32;
        int zip64Extra = zip64 ? 4 + 16 : 0;
        // pad so that the data (after the 30-byte header, name and extra fields) starts on an ALIGNMENT boundary
        long unpaddedDataStart = position + LOCAL_BYTES + nameBytes.length + zip64Extra + 4;
        int padding = (int) ((ALIGNMENT - unpaddedDataStart % ALIGNMENT) % ALIGNMENT);
        ByteBuffer h = ByteBuffer.allocate(LOCAL_BYTES + nameBytes.length + zip64Extra + 4 + padding).order(ByteOrder.LITTLE_ENDIAN);
        h.putInt(LOCAL_SIGNATURE)
                .putShort((short) (zip64 ? VERSION_ZIP64 : VERSION_PLAIN))
                .putShort((short) flags(nameBytes))
                .putShort((short) 0)            // method: stored
                .putShort((short) DOS_TIME)
                .putShort((short) DOS_DATE)
                .putInt(0)                      // CRC-32, patched in endRecord
                .putInt((int) (zip64 ? MAX32 : size))
                .putInt((int) (zip64 ? MAX32 : size))
                .putShort((short) nameBytes.length)
                .putShort((short) (zip64Extra + 4 + padding))
                .put(nameBytes);
        if (zip64) h.putShort((short) ZIP64_EXTRA_ID).putShort((short) 16).putLong(size).putLong(size);
        h.putShort((short) PADDING_EXTRA_ID).putShort((short) padding);
        for (int i = 0; i < padding; i++) h.put((byte) 'Z');
        currentLocalOffset = position;
        writeFully(h.flip());
        currentName = nameBytes;
        currentSize = size;
        currentWritten = 0;
        crc.reset();
    }

    /** Writes the buffer's remaining bytes as part of the open record. */
    void write(ByteBuffer data) throws IOException {
        int n = data.remaining();
        if (currentWritten + n > currentSize) {
            throw new IllegalStateException("record declared " + currentSize + " bytes but more are written");
        }
        crc.update(data.duplicate());
        writeFully(data);
        currentWritten += n;
    }

    void endRecord() throws IOException {
        if (currentWritten != currentSize) {
            throw new IllegalStateException("record declared " + currentSize + " bytes but " + currentWritten + " were written");
        }
        int value = (int) crc.getValue();
        ByteBuffer b = ByteBuffer.allocate(4).order(ByteOrder.LITTLE_ENDIAN).putInt(value).flip();
        long at = currentLocalOffset + 14;
        while (b.hasRemaining()) at += channel.write(b, at);
        entries.add(new CentralEntry(currentName, currentLocalOffset, currentSize, value));
        currentName = null;
    }

    /** A whole record from a byte array. */
    void record(String name, byte[] data) throws IOException {
        beginRecord(name, data.length);
        write(ByteBuffer.wrap(data));
        endRecord();
    }

    /** Writes the central directory and the end records. */
    void finish() throws IOException {
        if (currentName != null) throw new IllegalStateException("a record is still open");
        long centralOffset = position;
        for (CentralEntry e : entries) writeCentralEntry(e);
        long centralSize = position - centralOffset;
        long count = entries.size();
        boolean zip64 = forceZip64 || count >= MAX16 || centralOffset >= MAX32 || centralSize >= MAX32;
        if (zip64) {
            long zip64EndOffset = position;
            ByteBuffer z = ByteBuffer.allocate(56 + 20).order(ByteOrder.LITTLE_ENDIAN);
            z.putInt(ZIP64_EOCD_SIGNATURE).putLong(56 - 12)
                    .putShort((short) VERSION_ZIP64).putShort((short) VERSION_ZIP64)
                    .putInt(0).putInt(0)                   // this disk, disk with the central directory
                    .putLong(count).putLong(count)
                    .putLong(centralSize).putLong(centralOffset);
            z.putInt(ZIP64_LOCATOR_SIGNATURE).putInt(0).putLong(zip64EndOffset).putInt(1);
            writeFully(z.flip());
        }
        ByteBuffer end = ByteBuffer.allocate(22).order(ByteOrder.LITTLE_ENDIAN);
        end.putInt(EOCD_SIGNATURE).putShort((short) 0).putShort((short) 0)
                .putShort((short) Math.min(count, MAX16)).putShort((short) Math.min(count, MAX16))
                .putInt((int) Math.min(centralSize, MAX32)).putInt((int) Math.min(centralOffset, MAX32))
                .putShort((short) 0);                      // no comment
        writeFully(end.flip());
    }

    private void writeCentralEntry(CentralEntry e) throws IOException {
        boolean bigSize = forceZip64 || e.size >= MAX32;
        boolean bigOffset = forceZip64 || e.localOffset >= MAX32;
        int zip64Values = (bigSize ? 2 : 0) + (bigOffset ? 1 : 0);
        int extraLength = zip64Values == 0 ? 0 : 4 + 8 * zip64Values;
        boolean zip64 = zip64Values > 0;
        ByteBuffer c = ByteBuffer.allocate(46 + e.name.length + extraLength).order(ByteOrder.LITTLE_ENDIAN);
        c.putInt(CENTRAL_SIGNATURE)
                .putShort((short) (zip64 ? VERSION_ZIP64 : VERSION_PLAIN)) // made by (MS-DOS attributes)
                .putShort((short) (zip64 ? VERSION_ZIP64 : VERSION_PLAIN)) // needed to extract
                .putShort((short) flags(e.name))
                .putShort((short) 0)
                .putShort((short) DOS_TIME)
                .putShort((short) DOS_DATE)
                .putInt(e.crc)
                .putInt((int) (bigSize ? MAX32 : e.size))
                .putInt((int) (bigSize ? MAX32 : e.size))
                .putShort((short) e.name.length)
                .putShort((short) extraLength)
                .putShort((short) 0)   // comment length
                .putShort((short) 0)   // disk number start
                .putShort((short) 0)   // internal attributes
                .putInt(0)             // external attributes
                .putInt((int) (bigOffset ? MAX32 : e.localOffset))
                .put(e.name);
        if (zip64) {
            // the zip64 values come in this order, present only for the fields set to 0xffffffff above
            c.putShort((short) ZIP64_EXTRA_ID).putShort((short) (8 * zip64Values));
            if (bigSize) c.putLong(e.size).putLong(e.size);
            if (bigOffset) c.putLong(e.localOffset);
        }
        writeFully(c.flip());
    }

    /** Bit 11 says the name is UTF-8; set only when it is not plain ASCII, as other writers do. */
    private static int flags(byte[] name) {
        for (byte b : name) {
            if (b < 0) return 1 << 11;
        }
        return 0;
    }

    private void writeFully(ByteBuffer b) throws IOException {
        while (b.hasRemaining()) position += channel.write(b);
    }
}
