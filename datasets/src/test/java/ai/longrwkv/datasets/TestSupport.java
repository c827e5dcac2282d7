package ai.longrwkv.datasets;

import ai.longrwkv.core.tokenizer.Tokenizer;
import ai.longrwkv.core.tokenizer.WorldTokenizer;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

/** Shared test helpers: the World vocab (found above the working directory, never copied), small files. */
public final class TestSupport {
    private TestSupport() { }

    private static WorldTokenizer world;

    /** shared/oracle/NAME in the working directory or a parent; the test is skipped when it is not there. */
    public static Path oracle(String name) {
        return ai.longrwkv.core.testing.TestModels.oracle(name);
    }

    public static synchronized WorldTokenizer world() {
        if (world == null) world = WorldTokenizer.load(oracle("rwkv_vocab_v20230424.txt"));
        return world;
    }

    public static String worldSpec() {
        return "world:" + oracle("rwkv_vocab_v20230424.txt");
    }

    public static Path write(Path file, String content) throws IOException {
        Files.createDirectories(file.toAbsolutePath().getParent());
        Files.writeString(file, content, StandardCharsets.UTF_8);
        return file;
    }

    public static Path writeLines(Path file, List<String> lines) throws IOException {
        return write(file, String.join("\n", lines) + "\n");
    }

    public static Path writeBytes(Path file, byte[] content) throws IOException {
        Files.createDirectories(file.toAbsolutePath().getParent());
        Files.write(file, content);
        return file;
    }

    /** Flags as a string of 0 and 1. */
    public static String flags(byte[] flags) {
        StringBuilder sb = new StringBuilder(flags.length);
        for (byte f : flags) sb.append(f);
        return sb.toString();
    }

    public static String decodeBytes(int[] tokens) {
        byte[] b = new byte[tokens.length];
        for (int i = 0; i < tokens.length; i++) b[i] = (byte) tokens[i];
        return new String(b, StandardCharsets.UTF_8);
    }

    /** The byte tokenizer: one token per byte, so token flags line up with the characters of ASCII text. */
    public static Tokenizer bytes() {
        return ai.longrwkv.core.tokenizer.ByteTokenizer.INSTANCE;
    }
}
