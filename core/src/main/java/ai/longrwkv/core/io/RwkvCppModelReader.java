package ai.longrwkv.core.io;

import ai.longrwkv.core.model.ModelConfig;
import ai.longrwkv.core.model.ModelWeights;
import ai.longrwkv.core.tensor.HostTensor;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.CharBuffer;
import java.nio.channels.FileChannel;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.nio.file.AccessDeniedException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.Arrays;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * Reads rwkv.cpp model files (FP32 and FP16; layout in shared/oracle/README.md) and undoes the converter's
 * transforms, so the result has exactly the .pth keys and shapes of {@link ai.longrwkv.core.model.ParamSpec}:
 * <ul>
 *   <li>shapes are stored reversed (ggml order) and are turned back into PyTorch order;</li>
 *   <li>time_mix_* were squeezed to [C] and become [1,1,C] again;</li>
 *   <li>time_decay was stored as w = exp(-exp(td)) with shape [H,N,1]; it becomes td = log(-log(w)) of shape [H,N];</li>
 *   <li>time_faaaa [H,N,1] becomes [H,N];</li>
 *   <li>fp16 data becomes float32.</li>
 * </ul>
 * The result's impliedGroupNormEps is rwkv.cpp's 1e-5, since that is the eps these files were validated with.
 */
public final class RwkvCppModelReader {
    /** "ggmf" read as a little-endian int32. */
    public static final int MAGIC = 0x67676d66;
    private static final int HEADER_BYTES = 24;
    private static final int RECORD_HEADER_BYTES = 12;
    private static final int MAX_KEY_LENGTH = 1024;
    private static final int TYPE_FP32 = 0;
    private static final int TYPE_FP16 = 1;

    private RwkvCppModelReader() {}

    public static ModelWeights read(Path file) {
        String name = file.toString();
        if (Files.isDirectory(file)) {
            throw new ModelFormatException(name + ": is a directory, expected an rwkv.cpp model file");
        }
        try (FileChannel ch = FileChannel.open(file, StandardOpenOption.READ)) {
            return read(ch, name);
        } catch (NoSuchFileException e) {
            throw new ModelFormatException(name + ": file not found", e);
        } catch (AccessDeniedException e) {
            throw new ModelFormatException(name + ": cannot read the file (access denied)", e);
        } catch (IOException e) {
            throw new ModelFormatException(name + ": cannot read the file: " + e.getMessage(), e);
        }
    }

    private static ModelWeights read(FileChannel ch, String name) throws IOException {
        long size = ch.size();
        TensorDataReader in = new TensorDataReader(ch);
        if (size == 0) {
            throw new ModelFormatException(name + ": file is empty (0 bytes), expected an rwkv.cpp model file");
        }
        if (size < 4) {
            throw new ModelFormatException(name + ": file is only " + size + " bytes, too short for the rwkv.cpp magic; not an rwkv.cpp file");
        }
        int magic = in.readBytes(0, 4).getInt();
        if (magic != MAGIC) {
            throw new ModelFormatException(String.format("%s: magic 0x%08x found at byte offset 0, expected 0x%08x ('ggmf'); "
                    + "this is not an rwkv.cpp model file", name, magic, MAGIC));
        }
        if (size < HEADER_BYTES) {
            throw new ModelFormatException(name + ": truncated header: the file is " + size + " bytes, the rwkv.cpp header needs "
                    + HEADER_BYTES);
        }
        ByteBuffer header = in.readBytes(4, HEADER_BYTES - 4);
        int version = header.getInt();
        int nVocab = header.getInt();
        int nEmbed = header.getInt();
        int nLayer = header.getInt();
        int fileType = header.getInt();
        // 100 and 101 differ only in how quantized blocks are laid out, which does not concern FP32/FP16 data
        if (version != 100 && version != 101) {
            throw new ModelFormatException(name + ": unsupported rwkv.cpp file version " + version + " (byte offset 4), expected 100 or 101");
        }
        if (nVocab < 1 || nEmbed < 1 || nLayer < 1) {
            throw new ModelFormatException(name + ": header has n_vocab=" + nVocab + ", n_embed=" + nEmbed + ", n_layer=" + nLayer
                    + "; all must be positive (corrupt header)");
        }
        checkDataType(fileType, name, "header (byte offset 20)");

        Map<String, HostTensor> tensors = new LinkedHashMap<>();
        Map<String, Long> firstOffset = new HashMap<>();
        long pos = HEADER_BYTES;
        while (pos < size) {
            long recordStart = pos;
            if (size - pos < RECORD_HEADER_BYTES) {
                throw new ModelFormatException(name + ": truncated file: tensor record at byte offset " + recordStart + " needs a "
                        + RECORD_HEADER_BYTES + "-byte record header but only " + (size - pos) + " bytes remain");
            }
            ByteBuffer rec = in.readBytes(pos, RECORD_HEADER_BYTES);
            int dimCount = rec.getInt();
            int keyLength = rec.getInt();
            int dataType = rec.getInt();
            pos += RECORD_HEADER_BYTES;
            String where = "tensor record at byte offset " + recordStart;
            if (dimCount < 1 || dimCount > 4) {
                throw new ModelFormatException(name + ": " + where + ": dim_count " + dimCount + ", expected 1..4 (corrupt or misaligned file)");
            }
            if (keyLength <= 0 || keyLength > MAX_KEY_LENGTH) {
                throw new ModelFormatException(name + ": " + where + ": key length " + keyLength + ", expected 1.." + MAX_KEY_LENGTH
                        + " (corrupt or misaligned file)");
            }
            long rest = 4L * dimCount + keyLength;
            if (size - pos < rest) {
                throw new ModelFormatException(name + ": truncated file: " + where + " declares " + dimCount + " dims and a "
                        + keyLength + "-byte key but only " + (size - pos) + " bytes remain");
            }
            ByteBuffer shapeAndKey = in.readBytes(pos, (int) rest);
            pos += rest;
            int[] fileShape = new int[dimCount];
            for (int i = 0; i < dimCount; i++) fileShape[i] = shapeAndKey.getInt();
            String key = decodeKey(shapeAndKey, name, where);
            where = "tensor '" + key + "' (record at byte offset " + recordStart + ")";
            checkDataType(dataType, name, where);

            long numel = 1;
            for (int d : fileShape) {
                if (d < 1) {
                    throw new ModelFormatException(name + ": " + where + ": shape " + Arrays.toString(fileShape)
                            + " has a dimension < 1 (corrupt file)");
                }
                numel *= d; // at most 4 dims of < 2^31 each would overflow, so check after every step
                if (numel > Integer.MAX_VALUE - 8) {
                    throw new ModelFormatException(name + ": " + where + ": shape " + Arrays.toString(fileShape)
                            + " holds more values than one Java array can (corrupt file?)");
                }
            }
            TensorDataReader.Encoding enc = dataType == TYPE_FP16 ? TensorDataReader.Encoding.F16 : TensorDataReader.Encoding.F32;
            long dataBytes = numel * enc.bytes;
            if (size - pos < dataBytes) {
                throw new ModelFormatException(name + ": truncated file: " + where + " declares " + dataBytes + " bytes of data from byte offset "
                        + pos + " but only " + (size - pos) + " bytes remain");
            }
            Long earlier = firstOffset.putIfAbsent(key, recordStart);
            if (earlier != null) {
                throw new ModelFormatException(name + ": duplicate key: " + where + " was already defined by the record at byte offset " + earlier);
            }
            float[] data = in.readFloats(pos, (int) numel, enc);
            pos += dataBytes;
            tensors.put(key, toPthForm(key, reversed(fileShape), data, name, where));
        }
        if (tensors.isEmpty()) {
            throw new ModelFormatException(name + ": the file has an rwkv.cpp header but no tensors");
        }
        HostTensor emb = tensors.get("emb.weight");
        if (emb != null && !emb.sameShape(nVocab, nEmbed)) {
            throw new ModelFormatException(name + ": header says n_vocab=" + nVocab + " n_embed=" + nEmbed + " but 'emb.weight' has shape "
                    + HostTensor.shapeString(emb.shape()) + " (corrupt file)");
        }
        return new ModelWeights(tensors, name, ModelConfig.RWKV_CPP_GROUP_NORM_EPS);
    }

    private static void checkDataType(int type, String name, String where) {
        if (type == TYPE_FP32 || type == TYPE_FP16) return;
        if (type >= 2 && type <= 9) {
            throw new ModelFormatException(name + ": " + where + ": data type " + type + " is a quantized rwkv.cpp format, which is not supported; "
                    + "only FP32 (0) and FP16 (1) files can be read, convert the model to FP16 or FP32");
        }
        throw new ModelFormatException(name + ": " + where + ": unknown data type " + type + ", expected 0 (FP32) or 1 (FP16)");
    }

    private static String decodeKey(ByteBuffer buf, String name, String where) {
        try {
            // strict decoding: garbage bytes mean a corrupt or misaligned record, not a key to carry on with
            CharBuffer chars = StandardCharsets.UTF_8.newDecoder()
                    .onMalformedInput(CodingErrorAction.REPORT)
                    .onUnmappableCharacter(CodingErrorAction.REPORT)
                    .decode(buf);
            return chars.toString();
        } catch (CharacterCodingException e) {
            throw new ModelFormatException(name + ": " + where + ": key is not valid UTF-8 (corrupt or misaligned file)", e);
        }
    }

    private static int[] reversed(int[] shape) {
        int[] r = new int[shape.length];
        for (int i = 0; i < shape.length; i++) r[i] = shape[shape.length - 1 - i];
        return r;
    }

    /**
     * Undoes what convert_pytorch_to_ggml.py did to a tensor. Only the v5 forms are converted; tensors of other
     * generations (e.g. RWKV-4's 1-D time_decay = -exp(td)) are kept as stored so that
     * ModelConfig.checkArchitecture can refuse the model with a message about what it is.
     */
    private static HostTensor toPthForm(String key, int[] shape, float[] data, String name, String where) {
        if (!key.contains(".time_")) return new HostTensor(shape, data);
        boolean perHeadColumn = shape.length == 3 && shape[2] == 1; // [H, N, 1] after unsqueeze(-1)
        if (key.endsWith(".time_decay") && perHeadColumn) {
            for (int i = 0; i < data.length; i++) {
                double w = data[i];
                if (!(w > 0 && w < 1)) {
                    throw new ModelFormatException(name + ": " + where + ": stored decay w[" + i + "] = " + data[i]
                            + " is outside (0, 1); rwkv.cpp stores w = exp(-exp(time_decay)), which always lies in (0, 1)");
                }
                // in double: for w close to 1, log(w) in float would lose most of its digits
                data[i] = (float) Math.log(-Math.log(w));
            }
            return new HostTensor(new int[]{shape[0], shape[1]}, data);
        }
        if (key.endsWith(".time_faaaa") && perHeadColumn) {
            return new HostTensor(new int[]{shape[0], shape[1]}, data);
        }
        if (key.contains(".time_mix_") && shape.length == 1) {
            return new HostTensor(new int[]{1, 1, shape[0]}, data);
        }
        return new HostTensor(shape, data);
    }
}
