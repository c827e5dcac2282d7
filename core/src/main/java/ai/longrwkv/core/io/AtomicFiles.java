package ai.longrwkv.core.io;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.AtomicMoveNotSupportedException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;

/**
 * Writes a file so that a crash or kill at any moment leaves either the old file or the complete new one: the content
 * goes to a temporary file in the same directory, is forced to disk, and is renamed over the target (atomically
 * where the file system can), then the directory entry is synced. On failure the temporary file is removed.
 */
public final class AtomicFiles {
    private AtomicFiles() { }

    /** Writes the file's content to the channel it is given. */
    @FunctionalInterface
    public interface Content {
        void writeTo(FileChannel channel) throws IOException;
    }

    /** @param what what the file is, for the error message ("safetensors file", ".pth file") */
    public static void write(Path file, String what, Content content) {
        Path target = file.toAbsolutePath();
        Path dir = target.getParent();
        Path tmp = dir.resolve(target.getFileName() + ".tmp-" + ProcessHandle.current().pid() + "-" + System.nanoTime());
        try {
            try (FileChannel ch = FileChannel.open(tmp, StandardOpenOption.CREATE_NEW, StandardOpenOption.WRITE)) {
                content.writeTo(ch);
                ch.force(true);
            }
            try {
                Files.move(tmp, target, StandardCopyOption.ATOMIC_MOVE);
            } catch (AtomicMoveNotSupportedException e) {
                Files.move(tmp, target, StandardCopyOption.REPLACE_EXISTING);
            }
            syncDirectory(dir);
        } catch (IOException | RuntimeException e) {
            try {
                Files.deleteIfExists(tmp);
            } catch (IOException ignored) {
                // the original error is the one worth reporting
            }
            if (e instanceof IOException io) {
                String msg = file + ": cannot write " + what + ": " + reason(io, dir, tmp, target);
                throw new UncheckedIOException(msg, new WriteFailure(msg, io));
            }
            throw (RuntimeException) e;
        }
    }

    /** Why a write failed, in words: no exception class names, no temporary file names. */
    private static String reason(IOException e, Path dir, Path tmp, Path target) {
        if (!Files.isDirectory(dir)) return "the directory " + dir + " does not exist";
        if (e instanceof java.nio.file.AccessDeniedException) return "permission denied in " + dir;
        String r = e instanceof java.nio.file.FileSystemException fs && fs.getReason() != null ? fs.getReason() : e.getMessage();
        if (r == null || r.isBlank()) r = "input/output error";
        return r.replace(tmp.toString(), target.toString());
    }

    /**
     * The cause carried by the UncheckedIOException a failed write throws; its toString() is the message alone, so
     * that whoever prints the cause shows no class name.
     */
    static final class WriteFailure extends IOException {
        private static final long serialVersionUID = 1L;

        WriteFailure(String message, IOException cause) {
            super(message, cause);
        }

        @Override
        public String toString() {
            return getMessage();
        }
    }

    /** A small text file (pointers, JSON), written the same way. */
    public static void writeString(Path file, String text) {
        write(file, "file", ch -> writeFully(ch, ByteBuffer.wrap(text.getBytes(StandardCharsets.UTF_8))));
    }

    public static void writeFully(FileChannel ch, ByteBuffer buf) throws IOException {
        while (buf.hasRemaining()) ch.write(buf);
    }

    /** Makes the rename itself durable; best effort (not every file system can sync a directory). */
    private static void syncDirectory(Path dir) {
        try (FileChannel d = FileChannel.open(dir, StandardOpenOption.READ)) {
            d.force(true);
        } catch (IOException | UnsupportedOperationException e) {
            // the data itself is already on disk
        }
    }
}
