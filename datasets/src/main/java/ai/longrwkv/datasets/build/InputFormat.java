package ai.longrwkv.datasets.build;

import com.google.gson.JsonArray;
import com.google.gson.JsonObject;

import java.util.ArrayList;
import java.util.List;
import java.util.Locale;

/**
 * The input record formats of `data build` and how each becomes a document (text pieces with loss flags, then token
 * 0). Every document ends with token 0.
 *
 * <ul>
 * <li>{@code text}: jsonl {"text": "..."}, or a .txt file = one document. Everything trained, token 0 included.
 * The text is taken as it is.</li>
 * <li>{@code prompt-completion}: jsonl {"prompt": "...", "completion": "..."}: prompt + completion concatenated as
 * they are (add any separator to the data yourself), prompt masked, completion and token 0 trained.</li>
 * <li>{@code chat}: jsonl {"messages": [{"role": ..., "content": ...}, ...]} laid out by a {@link ChatTemplate} (World by
 * default). Roles system, user (or human), assistant (or gpt, model, bot, char; any case) are the system, user and
 * model turns (printed System, the user's display name, Assistant in World); any other role is a named speaker laid
 * out as a user turn and not trained; an optional "name" on a message replaces the printed speaker (its role still
 * decides the masking). Trained by default: the model's turns only.</li>
 * <li>{@code pippa}: PygmalionAI's PIPPA records (bot_name, bot_description, bot_definitions, bot_greeting,
 * conversation = [{message, is_human}]). {{char}} becomes the bot's name and {{user}} the user's display name ("User"
 * unless given; any case). The persona (the description, then the definitions, when either is non-empty) goes into
 * the template's persona text as a masked system turn. Human turns are user turns (masked), bot turns model turns
 * named bot_name (trained). If the greeting is non-empty and the conversation does not already start with it as a
 * bot message, it is added as the first bot turn. A record with no model turn (no bot message, no greeting) is bad.</li>
 * </ul>
 * With train-on all every token is trained in every format.
 */
public enum InputFormat {
    TEXT("text"),
    CHAT("chat"),
    PIPPA("pippa"),
    PROMPT_COMPLETION("prompt-completion");

    /** The name on the command line. */
    public final String cliName;

    InputFormat(String cliName) {
        this.cliName = cliName;
    }

    public static InputFormat parse(String name) {
        for (InputFormat f : values()) if (f.cliName.equalsIgnoreCase(name.trim())) return f;
        throw new IllegalArgumentException("unknown input format '" + name + "': expected text, chat, pippa or prompt-completion");
    }

    /** Renders one parsed jsonl record in the World layout with the user called "User". */
    public RenderedDocument render(JsonObject record, boolean trainAll) {
        return render(record, trainAll, ChatTemplate.WORLD, PIPPA_USER);
    }

    /**
     * Renders one parsed jsonl record; a record that does not fit the format throws {@link RecordException}. The
     * template and the user's display name apply to chat and pippa.
     */
    public RenderedDocument render(JsonObject record, boolean trainAll, ChatTemplate template, String userName) {
        return switch (this) {
            case TEXT -> renderText(Json.requiredString(record, "text", ""));
            case PROMPT_COMPLETION -> renderPromptCompletion(record, trainAll);
            case CHAT -> renderChat(record, trainAll, template, userName);
            case PIPPA -> renderPippa(record, trainAll, template, userName);
        };
    }

    /** Parses a jsonl line and renders it in the World layout. */
    public RenderedDocument renderLine(String jsonLine, boolean trainAll) {
        return render(Json.parseObject(jsonLine), trainAll);
    }

    /** Parses a jsonl line and renders it (what the builder does for each line). */
    public RenderedDocument renderLine(String jsonLine, boolean trainAll, ChatTemplate template, String userName) {
        return render(Json.parseObject(jsonLine), trainAll, template, userName);
    }

    /** A plain-text document: all trained. */
    public static RenderedDocument renderText(String text) {
        if (text.isEmpty()) throw new RecordException("empty text");
        return new RenderedDocument().add(text, true).endTrained(true);
    }

    private static RenderedDocument renderPromptCompletion(JsonObject record, boolean trainAll) {
        String prompt = Json.requiredString(record, "prompt", "");
        String completion = Json.requiredString(record, "completion", "");
        if (completion.isEmpty()) throw new RecordException("empty completion: nothing to train on");
        return new RenderedDocument().add(prompt, trainAll).add(completion, true).endTrained(true);
    }

    private static RenderedDocument renderChat(JsonObject record, boolean trainAll, ChatTemplate template, String userName) {
        JsonArray messages = Json.requiredArray(record, "messages", "");
        if (messages.isEmpty()) throw new RecordException("empty conversation: 'messages' is an empty list");
        List<ChatTemplate.Turn> turns = new ArrayList<>(messages.size());
        for (int i = 0; i < messages.size(); i++) {
            String where = "message " + i + ": ";
            JsonObject m = Json.object(messages.get(i), where);
            String role = Json.requiredString(m, "role", where);
            String content = template.normalizeMessage(Json.requiredString(m, "content", where));
            if (content.isEmpty()) throw new RecordException(where + "empty content");
            String name = Json.optionalString(m, "name", where);
            String roleKey = role.strip().toLowerCase(Locale.ROOT);
            ChatTemplate.Role r = ASSISTANT_ROLES.contains(roleKey) ? ChatTemplate.Role.MODEL : USER_ROLES.contains(roleKey) ? ChatTemplate.Role.USER
                    : roleKey.equals("system") ? ChatTemplate.Role.SYSTEM : ChatTemplate.Role.OTHER;
            String speaker = switch (r) {
                case MODEL -> "Assistant";
                case USER -> userName;
                case SYSTEM -> "System";
                case OTHER -> ChatTurns.normalizeSpeaker(role, where + "role");
            };
            if (!name.isBlank()) speaker = ChatTurns.normalizeSpeaker(name, where + "name");
            turns.add(new ChatTemplate.Turn(r, speaker, content));
        }
        return template.render(turns, trainAll);
    }

    /**
     * Chat roles of the model's turns (trained, printed "Assistant"): OpenAI's assistant, ShareGPT's gpt, Gemini's
     * model, and the bot / char of roleplay logs. Any case.
     */
    public static final java.util.Set<String> ASSISTANT_ROLES = java.util.Set.of("assistant", "gpt", "model", "bot", "char");
    /** Chat roles of the user's turns (masked, printed "User"): user, ShareGPT's human. */
    public static final java.util.Set<String> USER_ROLES = java.util.Set.of("user", "human");

    /** The speaker name of human turns in PIPPA documents, and what {{user}} becomes, unless another name is given. */
    public static final String PIPPA_USER = "User";

    private static RenderedDocument renderPippa(JsonObject record, boolean trainAll, ChatTemplate template, String userName) {
        String botName = ChatTurns.normalizeSpeaker(Json.requiredString(record, "bot_name", ""), "bot_name");
        String description = pippaText(Json.optionalString(record, "bot_description", ""), template, botName, userName);
        String definitions = pippaText(Json.optionalString(record, "bot_definitions", ""), template, botName, userName);
        String greeting = pippaText(Json.optionalString(record, "bot_greeting", ""), template, botName, userName);
        JsonArray conversation = Json.requiredArray(record, "conversation", "");
        if (conversation.isEmpty()) throw new RecordException("empty conversation: 'conversation' is an empty list");

        List<ChatTemplate.Turn> turns = new ArrayList<>(conversation.size() + 2);
        String persona = description.isEmpty() ? definitions : definitions.isEmpty() ? description : description + "\n" + definitions;
        if (!persona.isEmpty()) {
            String system = template.normalizeMessage(template.personaSystemText(persona, botName, userName));
            turns.add(new ChatTemplate.Turn(ChatTemplate.Role.SYSTEM, "System", system));
        }
        boolean modelTurn = false;
        for (int i = 0; i < conversation.size(); i++) {
            String where = "conversation[" + i + "]: ";
            JsonObject m = Json.object(conversation.get(i), where);
            String message = pippaText(Json.requiredString(m, "message", where), template, botName, userName);
            boolean human = Json.requiredBoolean(m, "is_human", where);
            if (message.isEmpty()) throw new RecordException(where + "empty message");
            if (i == 0 && !greeting.isEmpty() && (human || !message.equals(greeting))) {
                turns.add(new ChatTemplate.Turn(ChatTemplate.Role.MODEL, botName, greeting));
                modelTurn = true;
            }
            turns.add(human ? new ChatTemplate.Turn(ChatTemplate.Role.USER, userName, message) : new ChatTemplate.Turn(ChatTemplate.Role.MODEL, botName, message));
            modelTurn |= !human;
        }
        if (!modelTurn) {
            throw new RecordException("no model turn: every message of 'conversation' has is_human true and bot_greeting is empty (nothing to train on)");
        }
        return template.render(turns, trainAll);
    }

    private static String pippaText(String text, ChatTemplate template, String botName, String userName) {
        return template.normalizeMessage(ChatTemplate.fill(text, botName, userName));
    }
}
