package io.github.llama2j.chat;

import jinjava.javax.el.ELContext;
import jinjava.javax.el.ELResolver;

import java.beans.FeatureDescriptor;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Iterator;
import java.util.List;
import java.util.Locale;

/**
 * The Python {@code str} methods chat templates call ({@code startswith}, {@code endswith}, {@code strip},
 * {@code lstrip}, {@code rstrip}, {@code split}, {@code upper}, {@code lower}, {@code replace}), which jinjava,
 * a Java engine, does not know. Placed before jinjava's own resolver: anything else falls through to it.
 */
final class PythonStringMethods extends ELResolver {

    @Override
    public Object invoke(ELContext context, Object base, Object method, Class<?>[] paramTypes, Object[] params) {
        if (!(base instanceof String s) || method == null) {
            return null;
        }
        Object[] p = params == null ? new Object[0] : params;
        Object result = switch (method.toString()) {
            case "startswith" -> p.length == 1 ? anyMatch(p[0], s::startsWith) : null;
            case "endswith" -> p.length == 1 ? anyMatch(p[0], s::endsWith) : null;
            case "strip" -> p.length <= 1 ? rstrip(lstrip(s, chars(p)), chars(p)) : null;
            case "lstrip" -> p.length <= 1 ? lstrip(s, chars(p)) : null;
            case "rstrip" -> p.length <= 1 ? rstrip(s, chars(p)) : null;
            case "split" -> p.length <= 1 ? split(s, p.length == 0 ? null : (String) p[0]) : null;
            case "upper" -> p.length == 0 ? s.toUpperCase(Locale.ROOT) : null;
            case "lower" -> p.length == 0 ? s.toLowerCase(Locale.ROOT) : null;
            case "replace" -> p.length == 2 ? s.replace(String.valueOf(p[0]), String.valueOf(p[1])) : null;
            default -> null;
        };
        if (result != null) {
            context.setPropertyResolved(true);
        }
        return result;
    }

    /** Python's {@code str.startswith} also takes a tuple (a list here) of prefixes. */
    private static Boolean anyMatch(Object arg, java.util.function.Predicate<String> test) {
        if (arg instanceof List<?> l) {
            return l.stream().anyMatch(x -> test.test(String.valueOf(x)));
        }
        return test.test(String.valueOf(arg));
    }

    /** The characters to strip: null means whitespace. */
    private static String chars(Object[] p) {
        return p.length == 0 || p[0] == null ? null : String.valueOf(p[0]);
    }

    private static boolean strippable(String chars, int cp) {
        return chars == null ? Character.isWhitespace(cp) : chars.indexOf(cp) >= 0;
    }

    private static String lstrip(String s, String chars) {
        int i = 0;
        while (i < s.length() && strippable(chars, s.codePointAt(i))) {
            i += Character.charCount(s.codePointAt(i));
        }
        return s.substring(i);
    }

    private static String rstrip(String s, String chars) {
        int j = s.length();
        while (j > 0 && strippable(chars, s.codePointBefore(j))) {
            j -= Character.charCount(s.codePointBefore(j));
        }
        return s.substring(0, j);
    }

    /** Python's split: on a separator (keeping empty parts), or on runs of whitespace (dropping empty parts). */
    private static List<String> split(String s, String sep) {
        if (sep == null) {
            String t = s.strip();
            return t.isEmpty() ? new ArrayList<>() : new ArrayList<>(Arrays.asList(t.split("\\s+")));
        }
        List<String> parts = new ArrayList<>();
        int from = 0;
        for (int at = s.indexOf(sep, from); at >= 0 && !sep.isEmpty(); at = s.indexOf(sep, from)) {
            parts.add(s.substring(from, at));
            from = at + sep.length();
        }
        parts.add(s.substring(from));
        return parts;
    }

    @Override
    public Class<?> getCommonPropertyType(ELContext context, Object base) {
        return null;
    }

    @Override
    public Iterator<FeatureDescriptor> getFeatureDescriptors(ELContext context, Object base) {
        return null;
    }

    @Override
    public Class<?> getType(ELContext context, Object base, Object property) {
        return null;
    }

    @Override
    public Object getValue(ELContext context, Object base, Object property) {
        return null;
    }

    @Override
    public boolean isReadOnly(ELContext context, Object base, Object property) {
        return true;
    }

    @Override
    public void setValue(ELContext context, Object base, Object property, Object value) {
    }
}
