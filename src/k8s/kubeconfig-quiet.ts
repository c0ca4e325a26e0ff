// Reading a kubeconfig without ever quoting it: the file holds tokens, passwords and private keys,
// and an error message about it ends up in the log. A YAML error is told by its code, line and
// column (the parser's own message shows the line, token and all), an fs error by its code (its
// message quotes the path, which may be a token or key pasted where a path belongs), and parser
// warnings are not emitted at all (they would go to process.emitWarning with the source line).

import { parse as parseYaml } from 'yaml';

/** The YAML document; throws an Error that says where the text is broken without showing it. */
export function parseYamlQuietly(text: string, file: string): unknown {
  try {
    return parseYaml(text, { prettyErrors: false, logLevel: 'error' });
  } catch (error: unknown) {
    const code = (error as { code?: unknown }).code;
    const offset = (error as { pos?: unknown }).pos;
    let where = '';
    if (Array.isArray(offset) && typeof offset[0] === 'number') {
      const before = text.slice(0, offset[0]).split('\n');
      where = ` at line ${before.length}, column ${(before.at(-1)?.length ?? 0) + 1}`;
    }
    const what = typeof code === 'string' ? code : error instanceof Error ? error.name : 'error';
    throw new Error(`${file} is not valid YAML (${what}${where}; its text is not shown, it may hold credentials)`);
  }
}

/** Why a cluster's server URL cannot be used (the start-up log prints it), or undefined. */
export function serverUrlProblem(server: string): string | undefined {
  let url: URL;
  try {
    url = new URL(server);
  } catch {
    return 'server is not a URL';
  }
  if (url.username !== '' || url.password !== '') return 'server carries a user name or password; credentials belong in the user entry';
  return undefined;
}

/** An fs error's code (ENOENT, EACCES...), never its message. */
export function fsErrorCode(error: unknown): string {
  const code = (error as { code?: unknown }).code;
  return typeof code === 'string' ? code : 'unreadable';
}
