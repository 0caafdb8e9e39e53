--- asynchost.html: just enough HTML for crawlers, on LPeg.
--
--   local html = require "asynchost.html"
--   local page = html.parse(body)
--   print(page.title)                      --> Tutorial - Documentation
--   for _, href in ipairs(page.links) do
--     print(html.join_url(url, href))
--   end
--
-- A tokenizer, not a tree builder: it reads tags (names in any case),
-- attributes (double-, single- or un-quoted, or bare), comments, doctypes
-- and text as browsers split them, and never fails: what is not a tag (a
-- lone "<", an unterminated comment) is text.  The content of <script>
-- and <style> is raw text (an "<a href>" in a script is no link); that of
-- <title> and <textarea> is text up to its end tag.  Character references
-- (&amp; &#39; &#x27; and the common named ones) are decoded in text and
-- in attribute values.
--
-- html.tokens(s)      iterator of tokens: {type = "start", name, attrs,
--                     selfclosing}, {type = "end", name}, {type = "text",
--                     text} (decoded), {type = "comment", text},
--                     {type = "doctype", text}; names are lowercase
-- html.parse(s)       {title, links, base, text}: title (string, or nil
--                     without a <title>), links (the href of each <a> and
--                     <area>, in order), base (<base href>, or nil), text
--                     (the visible text, whitespace collapsed)
-- html.title(s), html.links(s)   those parts alone
-- html.decode(s)      s with its character references decoded
-- html.split_url(u)   {scheme, authority, host, port, path, query,
--                     fragment} (RFC 3986; absent parts are nil)
-- html.join_url(base, ref)  ref resolved against base (RFC 3986 5.2)
local lpeg = require "lpeg"

local P, R, S, C, Cs, Ct, Cg, Cp, Cmt =
  lpeg.P, lpeg.R, lpeg.S, lpeg.C, lpeg.Cs, lpeg.Ct, lpeg.Cg, lpeg.Cp, lpeg.Cmt

local M = {}

local function checkstring(s, i, fname)
  if type(s) ~= "string" then
    error(("bad argument #%d to '%s' (string expected, got %s)")
          :format(i, fname, s == nil and "no value" or type(s)), 3)
  end
end

---------------------------------------------------------------------------
-- Character references

local NAMED = {
  amp = "&", lt = "<", gt = ">", quot = "\"", apos = "'", nbsp = "\u{A0}",
  copy = "\u{A9}", reg = "\u{AE}", trade = "\u{2122}", hellip = "\u{2026}",
  mdash = "\u{2014}", ndash = "\u{2013}", lsquo = "\u{2018}",
  rsquo = "\u{2019}", ldquo = "\u{201C}", rdquo = "\u{201D}",
  laquo = "\u{AB}", raquo = "\u{BB}", middot = "\u{B7}", bull = "\u{2022}",
  deg = "\u{B0}", euro = "\u{20AC}", pound = "\u{A3}", yen = "\u{A5}",
  cent = "\u{A2}", sect = "\u{A7}", para = "\u{B6}", times = "\u{D7}",
  divide = "\u{F7}", eacute = "\u{E9}", egrave = "\u{E8}", ecirc = "\u{EA}",
  aacute = "\u{E1}", agrave = "\u{E0}", acirc = "\u{E2}", ccedil = "\u{E7}",
  ouml = "\u{F6}", uuml = "\u{FC}", auml = "\u{E4}", szlig = "\u{DF}",
  iacute = "\u{ED}", oacute = "\u{F3}", uacute = "\u{FA}", ntilde = "\u{F1}",
  Eacute = "\u{C9}", larr = "\u{2190}", rarr = "\u{2192}", uarr = "\u{2191}",
  darr = "\u{2193}", hearts = "\u{2665}", check = "\u{2713}",
}

local function codepoint(n)
  -- the replacement character for what is no Unicode scalar value
  if not n or n == 0 or n > 0x10FFFF or (n >= 0xD800 and n <= 0xDFFF) then
    n = 0xFFFD
  end
  return utf8.char(n)
end

local digit, hexdigit = R"09", R("09", "af", "AF")
local alnum = R("az", "AZ", "09")
-- each alternative captures the whole reference, which Cs replaces
local charref =
    P"&#" * S"xX" * C(hexdigit^1) * P";"^-1
      / function(h) return codepoint(tonumber(h:sub(-8), 16)) end
  + P"&#" * C(digit^1) * P";"^-1
      / function(d) return codepoint(tonumber(d:sub(-9))) end
  + Cmt(P"&" * C(alnum^1) * P";"^-1, function(_, i, name)
      local v = NAMED[name]
      if v then return i, v end
    end)
local decoder = Cs((charref + 1)^0)

--- s with its character references decoded; unknown ones stay as written.
function M.decode(s)
  checkstring(s, 1, "decode")
  if not s:find("&", 1, true) then return s end
  return decoder:match(s)
end
local decode = M.decode

---------------------------------------------------------------------------
-- Tokens

local space = S" \t\n\r\f"
local ws = space^0
local letter = R("az", "AZ")
-- a tag name: a letter, then anything but space, "/" and ">"
local tagname = C(letter * (1 - space - S"/>")^0) / string.lower
-- an attribute name: anything but space, "/", ">", "=" (a "=" may start it)
local attrname = C((1 - space - S"/>") * (1 - space - S"/>=")^0)
                 / string.lower
local attrvalue = P'"' * C((1 - P'"')^0) * P'"'
                + P"'" * C((1 - P"'")^0) * P"'"
                + C((1 - space - P">")^1)
local attr = Ct(Cg(attrname, "name")
                * (ws * P"=" * ws * Cg(attrvalue, "value"))^-1)
local attrs = Ct((ws * attr + ws * P"/" * #(1 - P">"))^0)
local starttag = P"<" * Cg(tagname, "name") * Cg(attrs, "attrs") * ws
                 * Cg(P"/" * lpeg.Cc(true), "selfclosing")^-1 * P">"
local endtag = P"</" * Cg(tagname, "name") * (1 - P">")^0 * P">"
local comment = P"<!--" * C((1 - P"-->")^0) * (P"-->" + -1)
local doctype = P"<!" * C((1 - P">")^0) * (P">" + -1)
                + P"<?" * C((1 - P">")^0) * (P">" + -1)  -- bogus comment
local text = C((1 - P"<")^1) + C(P"<")  -- a "<" that starts no tag

local token = Ct(Cg(lpeg.Cc("comment"), "type") * Cg(comment, "text")) * Cp()
            + Ct(Cg(lpeg.Cc("end"), "type") * endtag) * Cp()
            + Ct(Cg(lpeg.Cc("doctype"), "type") * Cg(doctype, "text")) * Cp()
            + Ct(Cg(lpeg.Cc("start"), "type") * starttag) * Cp()
            + Ct(Cg(lpeg.Cc("text"), "type") * Cg(text, "text")) * Cp()

-- elements whose content is not markup: raw (script, style) or text with
-- references (title, textarea), up to the matching end tag
local RAW = {script = "raw", style = "raw", title = "rcdata",
             textarea = "rcdata"}

local function tokenizer(s)
  local pos, lower, pending = 1, nil, nil
  return function()
    if pending then
      local t = pending
      pending = nil
      return t
    end
    if pos > #s then return nil end
    local t, nextpos = token:match(s, pos)
    pos = nextpos
    if t.type == "text" then
      -- merge adjacent text (a lone "<" is a token of its own)
      local more, p = {t.text}, pos
      while p <= #s do
        local u, q = token:match(s, p)
        if u.type ~= "text" then break end
        more[#more + 1], p = u.text, q
      end
      pos = p
      t.text = decode(table.concat(more))
    elseif t.type == "start" then
      local amap = {}
      for _, a in ipairs(t.attrs) do
        if amap[a.name] == nil then  -- the first of a repeated one wins
          amap[a.name] = a.value and decode(a.value) or ""
        end
      end
      t.attrs, t.selfclosing = amap, t.selfclosing or false
      local kind = RAW[t.name]
      if kind and not t.selfclosing then
        lower = lower or s:lower()
        local stop = lower:find("</" .. t.name, pos, true)
        while stop do  -- "</titlex" is no end tag of <title>
          local c = lower:sub(stop + #t.name + 2, stop + #t.name + 2)
          if c == "" or c == ">" or c == "/" or c:find("^%s") then break end
          stop = lower:find("</" .. t.name, stop + 1, true)
        end
        local body = s:sub(pos, (stop or #s + 1) - 1)
        pos = stop or #s + 1
        if body ~= "" then
          pending = {type = "text",
                     text = kind == "rcdata" and decode(body) or body,
                     raw = kind == "raw"}
        end
      end
    end
    return t
  end
end

--- Iterator of the tokens of s (see the top of the file).
function M.tokens(s)
  checkstring(s, 1, "tokens")
  return tokenizer(s)
end

---------------------------------------------------------------------------
-- What crawlers want

local function collapse(s)
  s = s:gsub("\u{A0}", " "):gsub("[ \t\n\r\f]+", " ")
  return (s:gsub("^ ", ""):gsub(" $", ""))
end

-- elements whose text is not shown
local HIDDEN = {script = true, style = true, template = true}

local function parse(s)
  local page = {links = {}}
  local texts, intitle, title = {}, false, nil
  local hidden = 0  -- inside script, style, template
  for t in tokenizer(s) do
    if t.type == "start" then
      local name = t.name
      if name == "title" and page.title == nil and not t.selfclosing then
        intitle, title = true, {}
      elseif (name == "a" or name == "area") and t.attrs.href then
        page.links[#page.links + 1] = collapse(t.attrs.href)
      elseif name == "base" and page.base == nil and t.attrs.href then
        page.base = collapse(t.attrs.href)
      elseif HIDDEN[name] and not t.selfclosing then
        hidden = hidden + 1
      end
    elseif t.type == "end" then
      if t.name == "title" and intitle then
        intitle = false
        page.title = collapse(table.concat(title))
      elseif HIDDEN[t.name] and hidden > 0 then
        hidden = hidden - 1
      end
    elseif t.type == "text" then
      if intitle then
        title[#title + 1] = t.text
      elseif hidden == 0 and not t.raw then
        texts[#texts + 1] = t.text
      end
    end
  end
  if intitle then page.title = collapse(table.concat(title)) end  -- no end
  page.text = collapse(table.concat(texts, " "))
  return page
end

--- {title, links, base, text} of the HTML s.
function M.parse(s)
  checkstring(s, 1, "parse")
  return parse(s)
end

--- The text of the first <title> (whitespace collapsed), or nil.
function M.title(s)
  checkstring(s, 1, "title")
  return parse(s).title
end

--- The href of each <a> and <area> of s, in order.
function M.links(s)
  checkstring(s, 1, "links")
  return parse(s).links
end

---------------------------------------------------------------------------
-- URLs (RFC 3986)

local scheme = C(letter * (alnum + S"+-.")^0) * P":"
local authority = P"//" * C((1 - S"/?#")^0)
local urlpat = Ct(Cg(scheme, "scheme")^-1 * Cg(authority, "authority")^-1
                  * Cg(C((1 - S"?#")^0), "path")
                  * (P"?" * Cg(C((1 - P"#")^0), "query"))^-1
                  * (P"#" * Cg(C(P(1)^0), "fragment"))^-1)

--- The parts of the URL u: {scheme (lowercase), authority, host
-- (lowercase), port (a number, or nil), path ("" if none), query,
-- fragment}; absent parts are nil.
function M.split_url(u)
  checkstring(u, 1, "split_url")
  local t = urlpat:match(u)
  if t.scheme then t.scheme = t.scheme:lower() end
  if t.authority then
    local hostport = t.authority:match("[^@]*$")
    local host, port = hostport:match("^(%[.-%])(.*)$")
    if not host then host, port = hostport:match("^([^:]*)(.*)$") end
    t.host = host:lower()
    t.port = tonumber(port:match("^:(%d+)$"))
  end
  return t
end
local split_url = M.split_url

local function remove_dots(path)
  local out, input = {}, path
  while input ~= "" do
    if input:sub(1, 3) == "../" then input = input:sub(4)
    elseif input:sub(1, 2) == "./" then input = input:sub(3)
    elseif input:sub(1, 3) == "/./" then input = input:sub(3)
    elseif input == "/." then input = "/"
    elseif input:sub(1, 4) == "/../" then
      input = input:sub(4)
      out[#out] = nil
    elseif input == "/.." then
      input = "/"
      out[#out] = nil
    elseif input == "." or input == ".." then input = ""
    else
      local seg = input:match("^/?[^/]*")
      out[#out + 1] = seg
      input = input:sub(#seg + 1)
    end
  end
  return table.concat(out)
end

local function build(t)
  local parts = {}
  if t.scheme then parts[#parts + 1] = t.scheme .. ":" end
  if t.authority then parts[#parts + 1] = "//" .. t.authority end
  parts[#parts + 1] = t.path
  if t.query then parts[#parts + 1] = "?" .. t.query end
  if t.fragment then parts[#parts + 1] = "#" .. t.fragment end
  return table.concat(parts)
end

--- ref resolved against the absolute URL base (RFC 3986, section 5.2):
-- join_url("http://h/a/b.html", "../c") --> "http://h/c".
function M.join_url(base, ref)
  checkstring(base, 1, "join_url")
  checkstring(ref, 2, "join_url")
  local b, r = split_url(base), split_url(ref)
  local t = {}
  if r.scheme then
    t.scheme, t.authority, t.path, t.query =
      r.scheme, r.authority, remove_dots(r.path), r.query
  else
    t.scheme = b.scheme
    if r.authority then
      t.authority, t.path, t.query = r.authority, remove_dots(r.path), r.query
    else
      t.authority = b.authority
      if r.path == "" then
        t.path = b.path
        if r.query then t.query = r.query else t.query = b.query end
      else
        if r.path:sub(1, 1) == "/" then
          t.path = remove_dots(r.path)
        else
          local merged
          if b.authority and b.path == "" then
            merged = "/" .. r.path
          else
            merged = b.path:match("^(.*/)") or ""
            merged = merged .. r.path
          end
          t.path = remove_dots(merged)
        end
        t.query = r.query
      end
    end
  end
  t.fragment = r.fragment
  if t.authority and t.path == "" then t.path = "/" end
  return build(t)
end

return M
