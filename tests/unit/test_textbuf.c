/* tests/unit/test_textbuf.c - supervisor/textbuf.c: the buffer grows past
 * its first size, and every character HTML gives a meaning is escaped
 * (the status page puts worker-reported values in its HTML). */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "../../supervisor/textbuf.h"

START_TEST(html_special_characters_are_escaped)
{
    struct textbuf b;
    char *text;

    textbuf_init(&b, 4);
    textbuf_html(&b, "<script>alert('x') & \"y\"</script>");
    text = textbuf_take(&b);
    ck_assert_ptr_nonnull(text);
    ck_assert_str_eq(text, "&lt;script&gt;alert(&#39;x&#39;) &amp; &quot;y&quot;&lt;/script&gt;");
    ck_assert_ptr_null(strchr(text, '<'));
    free(text);
}
END_TEST

START_TEST(printf_grows_the_buffer)
{
    struct textbuf b;
    char *text;

    textbuf_init(&b, 8);
    for (int i = 0; i < 1000; i++)
        textbuf_printf(&b, "%04d,", i);
    text = textbuf_take(&b);
    ck_assert_ptr_nonnull(text);
    ck_assert_uint_eq(strlen(text), 5000);
    ck_assert(strncmp(text, "0000,0001,", 10) == 0);
    ck_assert_str_eq(text + 4995, "0999,");
    free(text);
}
END_TEST

Suite *textbuf_suite(void)
{
    Suite *s = suite_create("textbuf");
    TCase *tc = tcase_create("textbuf");

    tcase_add_test(tc, html_special_characters_are_escaped);
    tcase_add_test(tc, printf_grows_the_buffer);
    suite_add_tcase(s, tc);
    return s;
}
