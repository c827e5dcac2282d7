package ai.longrwkv.core.io;

import ai.longrwkv.core.model.ModelWeights;
import ai.longrwkv.core.tensor.HostTensor;
import com.google.gson.Gson;
import com.google.gson.GsonBuilder;
import com.google.gson.JsonArray;
import com.google.gson.JsonElement;
import com.google.gson.JsonObject;
import com.google.gson.JsonParseException;
import com.google.gson.JsonPrimitive;
import com.google.gson.Strictness;
import com.google.gson.TypeAdapter;
import com.google.gson.stream.JsonReader;
import com.google.gson.stream.JsonToken;
import com.google.gson.stream.MalformedJsonException;

import java.io.IOException;
import java.io.StringReader;
import java.math.BigDecimal;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.AccessDeniedException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * The safetensors format (huggingface/safetensors): an unsigned 64-bit little-endian header length, a UTF-8 JSON
 * header {@code {"name": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, ..., "__metadata__": {..}}}
 * padded with spaces, then the raw little-endian data; offsets count from the start of the data section.
 * Reads F32, F16 and BF16 (converted to float32); writes F32.
 */
public final class Safetensors {
    public static final String METADATA_KEY = "__metadata__";
    /** Metadata key under which a writer records the ln_x GroupNorm eps the weights were made for. */
    public static final String GROUP_NORM_EPS_KEY = "ln_x_eps";
    /** The reference implementation refuses headers above 100 MB; so do we, instead of allocating whatever a corrupt length says. */
    private static final long MAX_HEADER_BYTES = 100_000_000L;
    private static final int WRITE_CHUNK_BYTES = 1 << 20;
    private static final Gson GSON = new GsonBuilder().disableHtmlEscaping().create();
    private static final TypeAdapter<JsonElement> JSON_ELEMENT = GSON.getAdapter(JsonElement.class);

    private Safetensors() {}

    /** One tensor's header entry, validated against the data section. */
    private record Entry(String key, TensorDataReader.Encoding encoding, int[] shape, long begin, long end) {}

    /** The parsed header: the JSON object and where the data section starts. */
    private record Header(JsonObject json, long dataStart, long dataSize) {}

    /** All tensors, converted to float32, in header order. */
    public static Map<String, HostTensor> readTensors(Path file) {
        String name = file.toString();
        try (FileChannel ch = open(file)) {
            TensorDataReader in = new TensorDataReader(ch);
            Header header = readHeader(ch, in, name);
            metadataOf(header.json, name); // only to refuse a malformed "__metadata__" here too
            Map<String, HostTensor> out = new LinkedHashMap<>();
            for (Entry entry : entries(header, name)) {
                int count = (int) HostTensor.numel(entry.shape);
                float[] data = in.readFloats(header.dataStart + entry.begin, count, entry.encoding);
                out.put(entry.key, new HostTensor(entry.shape, data));
            }
            return out;
        } catch (IOException e) {
            throw readError(name, e);
        }
    }

    /**
     * Every tensor entry in header order, each validated on its own, and the whole checked as the reference
     * implementation checks it: sorted by offset the tensors cover the data section exactly, each starting where the
     * previous one ends, the first at 0 and the last ending at the end of the file. A header length that is off by a
     * byte, overlapping or aliasing offsets, gaps and trailing bytes are all refused, naming the tensor.
     */
    private static java.util.List<Entry> entries(Header header, String name) {
        java.util.List<Entry> list = new java.util.ArrayList<>();
        for (Map.Entry<String, JsonElement> e : header.json.entrySet()) {
            if (e.getKey().equals(METADATA_KEY)) continue;
            list.add(parseEntry(e.getKey(), e.getValue(), header.dataSize, name));
        }
        java.util.List<Entry> sorted = new java.util.ArrayList<>(list);
        sorted.sort(java.util.Comparator.comparingLong(Entry::begin).thenComparingLong(Entry::end));
        long expected = 0;
        Entry previous = null;
        for (Entry e : sorted) {
            if (e.begin != expected) {
                String where = name + ": tensor '" + e.key + "': data_offsets [" + e.begin + ", " + e.end + "]";
                if (e.begin < expected) {
                    throw new ModelFormatException(where + " overlap the bytes of tensor '" + previous.key + "' (which ends at "
                            + expected + "); every tensor needs its own bytes, expected it to begin at " + expected);
                }
                throw new ModelFormatException(where + " leave a gap of " + (e.begin - expected) + " bytes after "
                        + (previous == null ? "the start of the data section" : "tensor '" + previous.key + "' (which ends at " + expected + ")")
                        + "; expected it to begin at " + expected);
            }
            expected = e.end;
            previous = e;
        }
        if (expected != header.dataSize) {
            throw new ModelFormatException(name + ": the tensors cover " + expected + " bytes of the data section but it has "
                    + header.dataSize + " (file size minus 8 minus the header length "
                    + (header.dataStart - 8) + "): " + (header.dataSize - expected) + " byte(s) "
                    + (previous == null ? "" : "after tensor '" + previous.key + "' ") + "belong to no tensor; "
                    + "the header length (first 8 bytes) is wrong or the file has extra bytes");
        }
        return list;
    }

    /**
     * Shapes and dtypes from the header (fully validated, offsets included) without reading the data; each tensor is
     * read from the file when it is loaded.
     */
    public static ModelWeights readShapes(Path file) {
        String name = file.toString();
        java.util.List<Entry> list;
        Map<String, String> metadata;
        long dataStart;
        try (FileChannel ch = open(file)) {
            Header header = readHeader(ch, new TensorDataReader(ch), name);
            metadata = metadataOf(header.json, name);
            list = entries(header, name);
            dataStart = header.dataStart;
        } catch (IOException e) {
            throw readError(name, e);
        }
        Map<String, ModelWeights.Entry> out = new LinkedHashMap<>();
        for (Entry e : list) {
            out.put(e.key, new ModelWeights.Entry() {
                @Override public int[] shape() { return e.shape.clone(); }
                @Override public String dtype() { return e.encoding.name(); }
                @Override public HostTensor load() {
                    try (FileChannel ch = open(file)) {
                        return new HostTensor(e.shape, new TensorDataReader(ch).readFloats(dataStart + e.begin,
                                (int) HostTensor.numel(e.shape), e.encoding));
                    } catch (IOException ex) {
                        throw readError(name, ex);
                    }
                }
            });
        }
        return ModelWeights.lazy(out, name, impliedEps(metadata, name));
    }

    /** The string map under "__metadata__"; empty if the file has none. Reads only the header. */
    public static Map<String, String> readMetadata(Path file) {
        String name = file.toString();
        try (FileChannel ch = open(file)) {
            Header header = readHeader(ch, new TensorDataReader(ch), name);
            return metadataOf(header.json, name);
        } catch (IOException e) {
            throw readError(name, e);
        }
    }

    /**
     * The tensors as model weights, with keys and shapes as stored (safetensors exports of .pth checkpoints keep
     * them). The implied GroupNorm eps is the "ln_x_eps" metadata value if present, else NaN (unknown).
     */
    public static ModelWeights readModel(Path file) {
        String name = file.toString();
        Map<String, String> metadata = readMetadata(file);
        return new ModelWeights(readTensors(file), name, impliedEps(metadata, name));
    }

    private static double impliedEps(Map<String, String> metadata, String name) {
        double eps = Double.NaN;
        String epsText = metadata.get(GROUP_NORM_EPS_KEY);
        if (epsText != null) {
            try {
                eps = Double.parseDouble(epsText.trim());
            } catch (NumberFormatException e) {
                throw new ModelFormatException(name + ": metadata '" + GROUP_NORM_EPS_KEY + "' = '" + epsText + "' is not a number");
            }
            if (!(eps > 0) || Double.isInfinite(eps)) {
                throw new ModelFormatException(name + ": metadata '" + GROUP_NORM_EPS_KEY + "' = '" + epsText + "', expected a positive number");
            }
        }
        return eps;
    }

    /**
     * Writes the tensors as F32 in map order, with the given metadata (may be null or empty). The bytes depend only
     * on the arguments. The file is written under a temporary name in the same directory, forced to disk and then
     * renamed over the target, so a crash leaves either the old file or the complete new one.
     */
    public static void write(Path file, Map<String, HostTensor> tensors, Map<String, String> metadata) {
        Map<String, ModelWeights.Entry> entries = new LinkedHashMap<>();
        tensors.forEach((k, t) -> entries.put(k, new ModelWeights.InMemory(t)));
        writeEntries(file, entries, metadata);
    }

    /**
     * As {@link #write}, reading each entry a block at a time while its data is written ({@link ModelWeights.Entry#forEachBlock}):
     * a checkpoint of tensors on a backend ({@link ModelWeights#ofTensor}) never sits in Java memory whole.
     */
    public static void writeEntries(Path file, Map<String, ? extends ModelWeights.Entry> tensors, Map<String, String> metadata) {
        byte[] header = headerBytes(file, tensors, metadata);
        AtomicFiles.write(file, "safetensors file", ch -> {
            ByteBuffer buf = ByteBuffer.allocateDirect(WRITE_CHUNK_BYTES).order(ByteOrder.LITTLE_ENDIAN);
            ByteBuffer prefix = ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN).putLong(header.length);
            writeFully(ch, prefix.flip());
            writeFully(ch, ByteBuffer.wrap(header));
            float[] block = null;
            for (Map.Entry<String, ? extends ModelWeights.Entry> e : tensors.entrySet()) {
                long expected = HostTensor.numel(e.getValue().shape());
                if (block == null) block = new float[ModelWeights.UPLOAD_BLOCK_VALUES];
                long[] written = {0};
                try {
                    e.getValue().forEachBlock(block, (first, values, count) -> {
                        try {
                            for (int i = 0; i < count; i++) {
                                if (!buf.hasRemaining()) {
                                    writeFully(ch, buf.flip());
                                    buf.clear();
                                }
                                buf.putInt(Float.floatToRawIntBits(values[i])); // raw bits: NaN payloads survive the round trip
                            }
                        } catch (IOException x) {
                            throw new java.io.UncheckedIOException(x);
                        }
                        written[0] += count;
                    });
                } catch (java.io.UncheckedIOException x) {
                    throw x.getCause();
                }
                if (written[0] != expected) {
                    throw new IllegalStateException(file + ": tensor '" + e.getKey() + "' gave " + written[0] + " values, its shape holds " + expected);
                }
            }
            writeFully(ch, buf.flip());
        });
    }

    private static byte[] headerBytes(Path file, Map<String, ? extends ModelWeights.Entry> tensors, Map<String, String> metadata) {
        JsonObject json = new JsonObject();
        // metadata first, as the reference writer does; it is optional in the format
        if (metadata != null && !metadata.isEmpty()) {
            JsonObject meta = new JsonObject();
            for (Map.Entry<String, String> m : metadata.entrySet()) {
                if (m.getKey() == null || m.getValue() == null) {
                    throw new IllegalArgumentException(file + ": metadata keys and values must not be null: " + m);
                }
                meta.addProperty(m.getKey(), m.getValue());
            }
            json.add(METADATA_KEY, meta);
        }
        long offset = 0;
        for (Map.Entry<String, ? extends ModelWeights.Entry> e : tensors.entrySet()) {
            String key = e.getKey();
            if (key == null || key.isEmpty() || key.equals(METADATA_KEY)) {
                throw new IllegalArgumentException(file + ": invalid tensor name '" + key + "'");
            }
            int[] dims = e.getValue().shape();
            JsonObject entry = new JsonObject();
            entry.addProperty("dtype", "F32");
            JsonArray shape = new JsonArray();
            for (int d : dims) shape.add(d);
            entry.add("shape", shape);
            JsonArray offsets = new JsonArray();
            long end = offset + 4L * HostTensor.numel(dims);
            offsets.add(offset);
            offsets.add(end);
            entry.add("data_offsets", offsets);
            json.add(key, entry);
            offset = end;
        }
        byte[] text = GSON.toJson(json).getBytes(StandardCharsets.UTF_8);
        // pad with spaces so the data section starts 8-byte aligned (8 + header length is a multiple of 8)
        int padded = (text.length + 7) / 8 * 8;
        byte[] out = Arrays.copyOf(text, padded);
        Arrays.fill(out, text.length, padded, (byte) ' ');
        return out;
    }

    private static FileChannel open(Path file) {
        String name = file.toString();
        if (Files.isDirectory(file)) {
            throw new ModelFormatException(name + ": is a directory, expected a safetensors file");
        }
        try {
            return FileChannel.open(file, StandardOpenOption.READ);
        } catch (IOException e) {
            throw readError(name, e);
        }
    }

    private static ModelFormatException readError(String name, IOException e) {
        if (e instanceof NoSuchFileException) return new ModelFormatException(name + ": file not found", e);
        if (e instanceof AccessDeniedException) return new ModelFormatException(name + ": cannot read the file (access denied)", e);
        return new ModelFormatException(name + ": cannot read the file: " + e.getMessage(), e);
    }

    private static Header readHeader(FileChannel ch, TensorDataReader in, String name) throws IOException {
        long size = ch.size();
        if (size < 8) {
            throw new ModelFormatException(name + ": file is " + size + " bytes, too short for a safetensors header "
                    + "(8-byte length, then JSON)");
        }
        long headerLength = in.readBytes(0, 8).getLong(); // u64; a negative long here means >= 2^63, caught below
        if (headerLength < 0 || headerLength > size - 8) {
            throw new ModelFormatException(name + ": safetensors header length " + Long.toUnsignedString(headerLength)
                    + " (first 8 bytes) is beyond the end of the file (" + size + " bytes); not a safetensors file, or truncated");
        }
        if (headerLength > MAX_HEADER_BYTES) {
            throw new ModelFormatException(name + ": safetensors header length " + headerLength + " exceeds the "
                    + MAX_HEADER_BYTES + "-byte limit; corrupt file?");
        }
        ByteBuffer raw = in.readBytes(8, (int) headerLength);
        String text = StandardCharsets.UTF_8.decode(raw).toString();
        JsonElement parsed;
        try {
            // strict JSON, as the reference (Rust serde_json) reader expects; Gson's JsonParser would be lenient
            JsonReader reader = new JsonReader(new StringReader(text));
            reader.setStrictness(Strictness.STRICT);
            parsed = JSON_ELEMENT.read(reader);
            if (reader.peek() != JsonToken.END_DOCUMENT) {
                throw new MalformedJsonException("unexpected text after the JSON object at " + reader.getPath());
            }
        } catch (IOException | JsonParseException | IllegalStateException | NumberFormatException e) {
            throw new ModelFormatException(name + ": invalid JSON in the safetensors header (" + headerLength + " bytes from byte offset 8): "
                    + jsonError(e), e);
        }
        if (!parsed.isJsonObject()) {
            throw new ModelFormatException(name + ": the safetensors header must be a JSON object, found: " + abbreviate(text));
        }
        return new Header(parsed.getAsJsonObject(), 8 + headerLength, size - 8 - headerLength);
    }

    private static Map<String, String> metadataOf(JsonObject header, String name) {
        Map<String, String> out = new LinkedHashMap<>();
        JsonElement meta = header.get(METADATA_KEY);
        if (meta == null || meta.isJsonNull()) return out;
        if (!meta.isJsonObject()) {
            throw new ModelFormatException(name + ": '" + METADATA_KEY + "' must be a JSON object of strings, found " + abbreviate(meta.toString()));
        }
        for (Map.Entry<String, JsonElement> e : meta.getAsJsonObject().entrySet()) {
            JsonElement v = e.getValue();
            if (!v.isJsonPrimitive()) {
                throw new ModelFormatException(name + ": metadata '" + e.getKey() + "' must be a string, found " + abbreviate(v.toString()));
            }
            out.put(e.getKey(), v.getAsString());
        }
        return out;
    }

    private static Entry parseEntry(String key, JsonElement value, long dataSize, String name) {
        String where = name + ": tensor '" + key + "'";
        if (!value.isJsonObject()) {
            throw new ModelFormatException(where + ": header entry must be an object with dtype, shape and data_offsets");
        }
        JsonObject o = value.getAsJsonObject();
        JsonElement dtypeEl = o.get("dtype");
        if (dtypeEl == null || !dtypeEl.isJsonPrimitive() || !dtypeEl.getAsJsonPrimitive().isString()) {
            throw new ModelFormatException(where + ": missing or non-string 'dtype'");
        }
        String dtype = dtypeEl.getAsString();
        TensorDataReader.Encoding enc = switch (dtype) {
            case "F32" -> TensorDataReader.Encoding.F32;
            case "F16" -> TensorDataReader.Encoding.F16;
            case "BF16" -> TensorDataReader.Encoding.BF16;
            default -> throw new ModelFormatException(where + " has dtype '" + dtype + "', which is not supported; only F32, F16 and BF16 can be read");
        };
        JsonArray shapeArr = array(o, "shape", where);
        int[] shape = new int[shapeArr.size()];
        long numel = 1;
        for (int i = 0; i < shape.length; i++) {
            long d = integer(shapeArr.get(i), "shape", where);
            if (d < 0 || d > Integer.MAX_VALUE) throw new ModelFormatException(where + ": invalid shape " + shapeArr);
            shape[i] = (int) d;
            numel *= d;
            if (numel > Integer.MAX_VALUE - 8) {
                throw new ModelFormatException(where + ": shape " + shapeArr + " holds more values than one Java array can");
            }
        }
        JsonArray offs = array(o, "data_offsets", where);
        if (offs.size() != 2) {
            throw new ModelFormatException(where + ": data_offsets must be [begin, end], found " + offs);
        }
        long begin = integer(offs.get(0), "data_offsets", where);
        long end = integer(offs.get(1), "data_offsets", where);
        if (begin < 0 || begin > end || end > dataSize) {
            throw new ModelFormatException(where + ": data_offsets " + offs + " are out of range: expected 0 <= begin <= end <= "
                    + dataSize + " (the size of the data section)");
        }
        long expected = numel * enc.bytes;
        if (end - begin != expected) {
            throw new ModelFormatException(where + ": data_offsets " + offs + " span " + (end - begin) + " bytes but dtype " + dtype
                    + " with shape " + Arrays.toString(shape) + " needs " + expected + " bytes");
        }
        return new Entry(key, enc, shape, begin, end);
    }

    private static JsonArray array(JsonObject o, String field, String where) {
        JsonElement el = o.get(field);
        if (el == null || !el.isJsonArray()) {
            throw new ModelFormatException(where + ": missing or non-array '" + field + "'");
        }
        return el.getAsJsonArray();
    }

    /** A JSON integer, refusing 1.5 or "3" (Gson would otherwise coerce them quietly). */
    private static long integer(JsonElement el, String field, String where) {
        if (el.isJsonPrimitive()) {
            JsonPrimitive p = el.getAsJsonPrimitive();
            if (p.isNumber()) {
                try {
                    BigDecimal bd = p.getAsBigDecimal();
                    return bd.longValueExact();
                } catch (ArithmeticException | NumberFormatException e) {
                    // fall through to the error below
                }
            }
        }
        throw new ModelFormatException(where + ": '" + field + "' must hold integers, found " + el);
    }

    /** Gson's message without its advice to parse leniently and its troubleshooting link, which do not help a user. */
    private static String jsonError(Exception e) {
        String msg = String.valueOf(e.getMessage());
        int nl = msg.indexOf('\n');
        if (nl >= 0) msg = msg.substring(0, nl);
        String advice = "Use JsonReader.setStrictness(Strictness.LENIENT) to accept ";
        if (msg.startsWith(advice)) msg = msg.substring(advice.length());
        return msg;
    }

    private static String abbreviate(String s) {
        return s.length() <= 80 ? s : s.substring(0, 80) + "...";
    }

    private static void writeFully(FileChannel ch, ByteBuffer buf) throws IOException {
        while (buf.hasRemaining()) ch.write(buf);
    }

    /** Makes the rename itself durable where the platform allows fsync on a directory (Linux does, others may not). */
}
