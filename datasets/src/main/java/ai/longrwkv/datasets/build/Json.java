package ai.longrwkv.datasets.build;

import com.google.gson.Gson;
import com.google.gson.GsonBuilder;
import com.google.gson.JsonArray;
import com.google.gson.JsonElement;
import com.google.gson.JsonObject;
import com.google.gson.JsonParseException;
import com.google.gson.Strictness;

/** Strict JSON reading of input records with errors that say which field is wrong. */
final class Json {
    private Json() { }

    /** Standard JSON only: no single quotes, comments or unquoted names, which lenient parsers accept silently. */
    private static final Gson STRICT = new GsonBuilder().setStrictness(Strictness.STRICT).create();

    static JsonObject parseObject(String line) {
        JsonElement e;
        try {
            e = STRICT.fromJson(line, JsonElement.class);
        } catch (JsonParseException ex) {
            // without Gson's link to its troubleshooting page or a wrapped exception's class name
            String why = ai.longrwkv.datasets.io.JsonMessages.problem(ex);
            throw new RecordException("malformed JSON: " + why);
        }
        if (e == null || !e.isJsonObject()) throw new RecordException("expected a JSON object {...}, got " + describe(e));
        return e.getAsJsonObject();
    }

    static String requiredString(JsonObject o, String field, String where) {
        JsonElement e = o.get(field);
        if (e == null || e.isJsonNull()) throw new RecordException(where + "missing field '" + field + "'");
        if (!e.isJsonPrimitive() || !e.getAsJsonPrimitive().isString()) {
            throw new RecordException(where + "field '" + field + "' must be a string, got " + describe(e));
        }
        return e.getAsString();
    }

    /** The string, or "" when the field is absent or null. */
    static String optionalString(JsonObject o, String field, String where) {
        JsonElement e = o.get(field);
        if (e == null || e.isJsonNull()) return "";
        if (!e.isJsonPrimitive() || !e.getAsJsonPrimitive().isString()) {
            throw new RecordException(where + "field '" + field + "' must be a string, got " + describe(e));
        }
        return e.getAsString();
    }

    static JsonArray requiredArray(JsonObject o, String field, String where) {
        JsonElement e = o.get(field);
        if (e == null || e.isJsonNull()) throw new RecordException(where + "missing field '" + field + "'");
        if (!e.isJsonArray()) throw new RecordException(where + "field '" + field + "' must be a list, got " + describe(e));
        return e.getAsJsonArray();
    }

    static boolean requiredBoolean(JsonObject o, String field, String where) {
        JsonElement e = o.get(field);
        if (e == null || e.isJsonNull()) throw new RecordException(where + "missing field '" + field + "'");
        if (!e.isJsonPrimitive() || !e.getAsJsonPrimitive().isBoolean()) {
            throw new RecordException(where + "field '" + field + "' must be true or false, got " + describe(e));
        }
        return e.getAsBoolean();
    }

    static JsonObject object(JsonElement e, String where) {
        if (e == null || !e.isJsonObject()) throw new RecordException(where + "expected an object {...}, got " + describe(e));
        return e.getAsJsonObject();
    }

    static String describe(JsonElement e) {
        if (e == null || e.isJsonNull()) return "null";
        if (e.isJsonObject()) return "an object";
        if (e.isJsonArray()) return "a list";
        if (e.getAsJsonPrimitive().isBoolean()) return "a boolean";
        if (e.getAsJsonPrimitive().isNumber()) return "a number";
        return "a string";
    }
}
