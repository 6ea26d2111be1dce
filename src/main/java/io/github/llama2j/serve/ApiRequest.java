package io.github.llama2j.serve;

import com.fasterxml.jackson.databind.JsonNode;

import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.function.Predicate;

/**
 * The fields of a completion or chat completion request this server uses, checked: a wrong type or an
 * out-of-range value is a 400 naming the field. Fields that would change the answer but that it cannot honour
 * (logprobs, tools, penalties, ...) are a 400 too unless their value means "off"; other fields are ignored, as
 * OpenAI's clients send many (user, store, metadata, ...).
 *
 * @param topK keep the k likeliest tokens ({@code top_k}, llama.cpp's server name); 0 = off, as in {@code llama2j run}
 * @param minP keep tokens with at least this fraction of the top probability ({@code min_p}); 0 = off
 * @param seed the sampler's seed, or null for a random one
 */
record ApiRequest(String model, String prompt, List<ChatMessage> messages, Integer maxTokens, float temperature,
                  float topP, int topK, float minP, Long seed, List<String> stop, boolean stream, boolean includeUsage) {

    /** {@code llama2j run}'s defaults, so that the same seed gives the same text. */
    static final float DEFAULT_TEMPERATURE = 1.0f;
    static final float DEFAULT_TOP_P = 0.9f;
    static final int MAX_STOP = 4;

    static ApiRequest parse(JsonNode body, boolean chat) {
        if (body == null || !body.isObject()) {
            throw ApiException.badRequest(null, "the request body must be a JSON object");
        }
        String model = optionalString(body, "model");
        String prompt = null;
        List<ChatMessage> messages = null;
        if (chat) {
            messages = messages(body.get("messages"));
        } else {
            prompt = prompt(body.get("prompt"));
        }
        Integer maxTokens = optionalInt(body, "max_completion_tokens");
        if (maxTokens == null) {
            maxTokens = optionalInt(body, "max_tokens");
        }
        if (maxTokens != null && maxTokens < 1) {
            throw ApiException.badRequest("max_tokens", "max_tokens is " + maxTokens + ", must be >= 1");
        }
        float temperature = optionalNumber(body, "temperature", DEFAULT_TEMPERATURE);
        if (!(temperature >= 0 && temperature <= 2)) {
            throw ApiException.badRequest("temperature", "temperature is " + temperature + ", must be in [0, 2]");
        }
        float topP = optionalNumber(body, "top_p", DEFAULT_TOP_P);
        if (!(topP >= 0 && topP <= 1)) {
            throw ApiException.badRequest("top_p", "top_p is " + topP + ", must be in [0, 1]");
        }
        Integer topK = optionalInt(body, "top_k");
        if (topK != null && topK < 0) {
            throw ApiException.badRequest("top_k", "top_k is " + topK + ", must be >= 0 (0 = off)");
        }
        float minP = optionalNumber(body, "min_p", 0f);
        if (!(minP >= 0 && minP <= 1)) {
            throw ApiException.badRequest("min_p", "min_p is " + minP + ", must be in [0, 1] (0 = off)");
        }
        Long seed = optionalLong(body, "seed");
        Integer n = optionalInt(body, "n");
        if (n != null && n != 1) {
            throw ApiException.badRequest("n", "n is " + n + ": this server returns one choice per request (n = 1)");
        }
        refuseUnsupported(body);
        boolean stream = optionalBoolean(body, "stream");
        boolean includeUsage = false;
        JsonNode options = body.get("stream_options");
        if (options != null && !options.isNull()) {
            if (!stream) {
                throw ApiException.badRequest("stream_options", "stream_options is only allowed with \"stream\": true");
            }
            if (!options.isObject()) {
                throw ApiException.badRequest("stream_options", "stream_options must be an object");
            }
            includeUsage = optionalBoolean(options, "include_usage", "stream_options.include_usage");
        }
        return new ApiRequest(model, prompt, messages, maxTokens, temperature, topP, topK == null ? 0 : topK, minP, seed, stop(body.get("stop")), stream,
                includeUsage);
    }

    /**
     * OpenAI's fields that would change the answer and that this server does not implement: refused, so that a
     * client never takes an answer made without them for one made with them. The values that mean "off" are
     * accepted, since clients send them as defaults.
     */
    private static void refuseUnsupported(JsonNode body) {
        onlyOff(body, "logprobs", v -> v.isBoolean() && !v.asBoolean(), "false (token log-probabilities are not computed)");
        onlyOff(body, "top_logprobs", v -> v.isIntegralNumber() && v.asLong() == 0, "0 (token log-probabilities are not computed)");
        onlyOff(body, "response_format", v -> v.isObject() && v.size() == 1 && "text".equals(v.path("type").asText(null)),
                "{\"type\": \"text\"} (no JSON mode or schema)");
        onlyOff(body, "tools", v -> v.isArray() && v.isEmpty(), "an empty array (no tool calling)");
        onlyOff(body, "functions", v -> v.isArray() && v.isEmpty(), "an empty array (no function calling)");
        onlyOff(body, "tool_choice", v -> "none".equals(v.asText(null)) && v.isTextual(), "\"none\" (no tool calling)");
        onlyOff(body, "function_call", v -> "none".equals(v.asText(null)) && v.isTextual(), "\"none\" (no function calling)");
        onlyOff(body, "frequency_penalty", v -> v.isNumber() && v.doubleValue() == 0, "0 (no penalties)");
        onlyOff(body, "presence_penalty", v -> v.isNumber() && v.doubleValue() == 0, "0 (no penalties)");
        onlyOff(body, "logit_bias", v -> v.isObject() && v.isEmpty(), "an empty object (no logit bias)");
        onlyOff(body, "echo", v -> v.isBoolean() && !v.asBoolean(), "false (the prompt is not echoed)");
        onlyOff(body, "best_of", v -> v.isIntegralNumber() && v.asLong() == 1, "1 (one choice per request)");
        onlyOff(body, "suffix", v -> v.isTextual() && v.asText().isEmpty(), "an empty string (no insertion)");
    }

    /** A 400 naming {@code field} unless it is absent, null or {@code off}. */
    private static void onlyOff(JsonNode body, String field, Predicate<JsonNode> off, String accepted) {
        JsonNode n = body.get(field);
        if (n != null && !n.isNull() && !off.test(n)) {
            throw ApiException.badRequest(field, field + " is not supported by this server: only " + accepted
                    + " is accepted");
        }
    }

    private static List<ChatMessage> messages(JsonNode node) {
        if (node == null || node.isNull()) {
            throw ApiException.badRequest("messages", "messages is missing");
        }
        if (!node.isArray() || node.isEmpty()) {
            throw ApiException.badRequest("messages", "messages must be a non-empty array");
        }
        List<ChatMessage> out = new ArrayList<>();
        for (int i = 0; i < node.size(); i++) {
            JsonNode m = node.get(i);
            String at = "messages[" + i + "]";
            if (!m.isObject()) {
                throw ApiException.badRequest(at, at + " must be an object with role and content");
            }
            JsonNode role = m.get("role");
            if (role == null || !role.isTextual()) {
                throw ApiException.badRequest(at + ".role", at + ".role is missing or not a string");
            }
            ChatMessage.Role r = switch (role.asText()) {
                case "system", "developer" -> ChatMessage.Role.SYSTEM;
                case "user" -> ChatMessage.Role.USER;
                case "assistant" -> ChatMessage.Role.ASSISTANT;
                default -> throw ApiException.badRequest(at + ".role", at + ".role is '" + role.asText()
                        + "', must be system, user or assistant");
            };
            out.add(new ChatMessage(r, content(m.get("content"), at + ".content")));
        }
        return out;
    }

    /** A string, or an array of {@code {"type": "text", "text": ...}} parts (joined). */
    private static String content(JsonNode node, String at) {
        if (node != null && node.isTextual()) {
            return node.asText();
        }
        if (node != null && node.isArray()) {
            StringBuilder text = new StringBuilder();
            for (JsonNode part : node) {
                JsonNode type = part.get("type");
                JsonNode t = part.get("text");
                if (type == null || !"text".equals(type.asText()) || t == null || !t.isTextual()) {
                    throw ApiException.badRequest(at, at + ": only text parts ({\"type\": \"text\", \"text\": ...}) are supported");
                }
                text.append(t.asText());
            }
            return text.toString();
        }
        throw ApiException.badRequest(at, at + (node == null || node.isNull() ? " is missing" : " is not a string")
                + ": give a string or an array of text parts");
    }

    private static String prompt(JsonNode node) {
        if (node == null || node.isNull()) {
            throw ApiException.badRequest("prompt", "prompt is missing");
        }
        if (node.isTextual()) {
            return node.asText();
        }
        if (node.isArray() && node.size() == 1 && node.get(0).isTextual()) {
            return node.get(0).asText();
        }
        throw ApiException.badRequest("prompt", "prompt must be a string (or an array of one string)");
    }

    private static List<String> stop(JsonNode node) {
        if (node == null || node.isNull()) {
            return List.of();
        }
        List<String> out = new ArrayList<>();
        if (node.isTextual()) {
            out.add(node.asText());
        } else if (node.isArray()) {
            for (JsonNode s : node) {
                if (!s.isTextual()) {
                    throw ApiException.badRequest("stop", "stop must be a string or an array of strings");
                }
                out.add(s.asText());
            }
        } else {
            throw ApiException.badRequest("stop", "stop must be a string or an array of strings");
        }
        if (out.size() > MAX_STOP) {
            throw ApiException.badRequest("stop", "stop holds " + out.size() + " strings, at most " + MAX_STOP);
        }
        for (String s : out) {
            if (s.isEmpty()) {
                throw ApiException.badRequest("stop", "a stop string is empty");
            }
        }
        return out;
    }

    /** The field's value, null when absent or JSON null; a 400 when {@code ok} rejects it. */
    private static JsonNode optional(JsonNode body, String field, Predicate<JsonNode> ok, String expected) {
        return optional(body, field, field, ok, expected);
    }

    /** As above, for a field inside an object: {@code path} (such as {@code stream_options.include_usage}) names it. */
    private static JsonNode optional(JsonNode parent, String field, String path, Predicate<JsonNode> ok, String expected) {
        JsonNode n = parent.get(field);
        if (n == null || n.isNull()) {
            return null;
        }
        if (!ok.test(n)) {
            throw ApiException.badRequest(path, path + " must be " + expected);
        }
        return n;
    }

    private static String optionalString(JsonNode body, String field) {
        JsonNode n = optional(body, field, JsonNode::isTextual, "a string");
        return n == null ? null : n.asText();
    }

    private static boolean optionalBoolean(JsonNode body, String field) {
        return optionalBoolean(body, field, field);
    }

    private static boolean optionalBoolean(JsonNode parent, String field, String path) {
        JsonNode n = optional(parent, field, path, JsonNode::isBoolean, "true or false");
        return n != null && n.asBoolean();
    }

    private static Long optionalLong(JsonNode body, String field) {
        JsonNode n = optional(body, field, v -> v.isIntegralNumber() && v.canConvertToLong(), "an integer (64-bit)");
        return n == null ? null : n.asLong();
    }

    private static Integer optionalInt(JsonNode body, String field) {
        JsonNode n = optional(body, field, v -> v.isIntegralNumber() && v.canConvertToInt(), "an integer");
        return n == null ? null : n.asInt();
    }

    private static float optionalNumber(JsonNode body, String field, float fallback) {
        JsonNode n = optional(body, field, JsonNode::isNumber, "a number");
        return n == null ? fallback : n.floatValue();
    }

    @Override
    public String toString() {
        return String.format(Locale.ROOT, "ApiRequest[model=%s, stream=%s]", model, stream);
    }
}
