package ai.longrwkv.datasets.binidx;

import com.google.gson.Gson;
import com.google.gson.GsonBuilder;
import com.google.gson.JsonElement;
import com.google.gson.JsonObject;
import com.google.gson.JsonParseException;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;

/**
 * PREFIX.meta.json: what made a dataset. Keys always present: "kind" ("documents", "packed" or "synthetic"),
 * "tokenizer" (the spec it was built with), "documents", "tokens", "trained_tokens", "dtype". The rest depends on
 * the kind. No timestamps or timings, so the same run writes the same bytes.
 */
public final class DatasetMeta {
    private DatasetMeta() { }

    /** Metadata files are a few KB; anything above this is not one (and is refused before it is read). */
    static final long MAX_BYTES = 16L << 20;

    private static final Gson PRETTY = new GsonBuilder().setPrettyPrinting().disableHtmlEscaping().create();

    public static byte[] toBytes(JsonObject meta) {
        return (PRETTY.toJson(meta) + "\n").getBytes(StandardCharsets.UTF_8);
    }

    public static void write(Path file, JsonObject meta) {
        try {
            Files.write(file, toBytes(meta));
        } catch (IOException e) {
            throw new UncheckedIOException("cannot write " + file + ": " + e.getMessage(), e);
        }
    }

    /** PREFIX.meta.json, or null when the dataset has none (a binidx made by other tools). */
    public static JsonObject read(Path prefix) {
        Path file = BinIdxFormat.meta(prefix);
        if (!ai.longrwkv.datasets.io.InputFiles.present(file, "dataset metadata")) return null;
        String text = new String(ai.longrwkv.datasets.io.InputFiles.readAtMost(file, MAX_BYTES, "dataset metadata"), StandardCharsets.UTF_8);
        try {
            JsonElement e = JsonParserHolder.GSON.fromJson(text, JsonElement.class);
            if (e == null || !e.isJsonObject()) throw new IllegalArgumentException(file + ": expected a JSON object");
            return e.getAsJsonObject();
        } catch (JsonParseException e) {
            throw new IllegalArgumentException(file + ": not valid JSON: " + ai.longrwkv.datasets.io.JsonMessages.problem(e));
        }
    }

    /** A string field of the metadata, or `otherwise`. */
    public static String string(JsonObject meta, String key, String otherwise) {
        if (meta == null) return otherwise;
        JsonElement e = meta.get(key);
        return e == null || e.isJsonNull() || !e.isJsonPrimitive() ? otherwise : e.getAsString();
    }

    /** A whole-number field of the metadata, or `otherwise` when it is absent or not a number. */
    public static long number(JsonObject meta, String key, long otherwise) {
        if (meta == null) return otherwise;
        JsonElement e = meta.get(key);
        if (e == null || !e.isJsonPrimitive() || !e.getAsJsonPrimitive().isNumber()) return otherwise;
        try {
            return new java.math.BigDecimal(e.getAsString()).longValueExact();
        } catch (ArithmeticException | NumberFormatException ex) {
            return otherwise;
        }
    }

    private static final class JsonParserHolder {
        static final Gson GSON = new Gson();
    }
}
